#!/usr/bin/env bash
# Make sure a Docker engine answers; start dockerd in the background when none does.
set -euo pipefail
if docker info >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "no Docker engine answers and starting dockerd needs root" >&2
  exit 1
fi
log=${DOCKERD_LOG:-/var/log/motey-dockerd.log}
echo "==> starting dockerd (log: $log)"
nohup dockerd >"$log" 2>&1 &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    exit 0
  fi
  sleep 0.5
done
echo "dockerd did not come up; last lines of $log:" >&2
tail -20 "$log" >&2
exit 1
