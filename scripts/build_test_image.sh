#!/usr/bin/env bash
# Build the local test image motey-test/busybox:latest from Debian's busybox-static.
# There is no registry here: the image is imported from a folder with `docker import`.
set -euo pipefail
IMAGE=${1:-motey-test/busybox:latest}
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  exit 0
fi
busybox=$(command -v busybox || true)
[ -n "$busybox" ] || { echo "busybox is not installed (apt-get install busybox-static)" >&2; exit 1; }
if ldd "$busybox" >/dev/null 2>&1; then
  echo "$busybox is dynamically linked; install busybox-static" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/tmp" "$tmp/www"
cp "$busybox" "$tmp/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$tmp/bin/$applet"
done
echo "motey test image" >"$tmp/www/index.html"
tar -C "$tmp" -c . | docker import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' - "$IMAGE" >/dev/null
echo "==> built test image $IMAGE"
