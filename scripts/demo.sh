#!/usr/bin/env bash
# One command to see Motey work: set everything up, start a node on 127.0.1.1 as a
# daemon, deploy scripts/demo-blueprint.yaml and follow the service until it runs.
#   scripts/demo.sh          set up, start, deploy, show
#   scripts/demo.sh stop     terminate the demo service and stop the node
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${MOTEY_VENV:-$ROOT/.venv}
DEMO=$ROOT/var/demo
IP=127.0.1.1
API=http://$IP:5023/v1

write_config() {
  mkdir -p "$DEMO"
  cat >"$DEMO/config.ini" <<INI
[GENERAL]
pid = motey.pid
[LOGGER]
log_path = log
[DATABASE]
path = db
[NODE]
ip = $IP
name = demo-node
[ZEROMQ]
capability_engine_ipc_path = $DEMO/capability_engine.ipc
[DOCKER]
stop_timeout = 2
INI
}

json() { "$VENV/bin/python" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

if [ "${1:-}" = stop ]; then
  for id in $(curl -fsS "$API/service" 2>/dev/null | json "' '.join(s['id'] for s in d if s['state'] != 'TERMINATED')"); do
    curl -fsS -X DELETE "$API/service/$id" >/dev/null && echo "terminating service $id"
  done
  sleep 3
  "$VENV/bin/motey" stop --config "$DEMO/config.ini"
  exit 0
fi

./scripts/setup.sh
write_config
if ! "$VENV/bin/motey" status --config "$DEMO/config.ini" >/dev/null; then
  "$VENV/bin/motey" start --config "$DEMO/config.ini"
fi
for _ in $(seq 1 50); do
  curl -fsS "$API/node" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "$API/node" >/dev/null || { echo "node did not start; see $DEMO/log/application.log" >&2; exit 1; }

echo "==> deploying scripts/demo-blueprint.yaml"
id=$(curl -fsS -X POST -H 'Content-Type: application/x-yaml' \
  --data-binary @scripts/demo-blueprint.yaml "$API/service" | json "d['id']")
echo "service id: $id"
state=""
for _ in $(seq 1 60); do
  now=$(curl -fsS "$API/service/$id" | json "d['state'] + ' ' + d['state_message']")
  if [ "$now" != "$state" ]; then echo "  state: $now"; state=$now; fi
  case "$now" in RUNNING*|ERROR*) break ;; esac
  sleep 0.5
done
curl -fsS "$API/service/$id" | json "'\n'.join('  image %s on node %s: %s' % (i['name'], i['node'], i['state']) for i in d['images'])"
cat <<MSG

REST API:     $API   (OpenAPI: $API/openapi.json)
Web client:   http://$IP:5023/
Demo web app: http://$IP:18080/  (served by the first image)
Log:          $DEMO/log/application.log
Stop it all:  scripts/demo.sh stop
MSG
