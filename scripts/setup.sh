#!/usr/bin/env bash
# Install everything a Motey node and its tests need on a Debian machine, idempotently:
# Debian packages (docker.io, mosquitto, busybox-static), a Python virtual environment
# with Motey and its test tools, a running Docker engine, and the local test image.
# Usage: scripts/setup.sh            (as root, or with sudo available)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${MOTEY_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_pkgs+=(mosquitto)
[ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || need_pkgs+=(busybox-static)
command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
"$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1 || need_pkgs+=(python3-venv)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  say "installing Debian packages: ${need_pkgs[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
say "installing Motey and test tools into $VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[test,docs]" 2>&1 \
  | grep -v "^WARNING: Location" || true
"$VENV/bin/python" -c 'import motey, flask, zmq, paho.mqtt, docker, tinydb' \
  || { echo "Python dependencies did not install" >&2; exit 1; }

"$ROOT/scripts/ensure_docker.sh"
"$ROOT/scripts/build_test_image.sh"
"$ROOT/scripts/ensure_image_tools.sh"  # debootstrap, qemu-user-static: the node images
"$ROOT/scripts/install_browser_deps.sh"  # chromium + playwright-core for the web client tests
say "setup complete"
