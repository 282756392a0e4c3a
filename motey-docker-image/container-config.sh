#!/bin/sh
# Turn the repository's config.ini into the image's /etc/motey/config.ini: the same keys
# and comments, with container paths instead of paths relative to the config file.
# Usage: container-config.sh SOURCE TARGET
set -eu
src=$1
dst=$2
mkdir -p "$(dirname "$dst")"
sed \
  -e 's|^pid = .*|pid = /run/motey/motey.pid|' \
  -e 's|^log_path = .*|log_path = /var/log/motey|' \
  -e '/^\[DATABASE\]/,/^\[/ s|^path = .*|path = /var/lib/motey|' \
  -e 's|^url = unix:.*|url = unix:///var/run/docker.sock|' \
  -e 's|^capability_engine_ipc_path = .*|capability_engine_ipc_path = /run/motey/capability_engine.ipc|' \
  "$src" >"$dst"
# Fail the build when config.ini changed so that a substitution no longer applies.
env -u MOTEY_CONFIG "${PYTHON:-python3}" - "$dst" <<'PY'
import os
import sys

from motey.config import load_config

for name in [n for n in os.environ if n.startswith("MOTEY_")]:
    del os.environ[name]
config = load_config(sys.argv[1])
expected = {
    ("GENERAL", "pid"): "/run/motey/motey.pid",
    ("LOGGER", "log_path"): "/var/log/motey",
    ("DATABASE", "path"): "/var/lib/motey",
    ("DOCKER", "url"): "unix:///var/run/docker.sock",
    ("ZEROMQ", "capability_engine_ipc_path"): "/run/motey/capability_engine.ipc",
}
wrong = {k: config[k[0]][k[1]] for k, v in expected.items() if str(config[k[0]][k[1]]) != v}
if wrong:
    sys.exit(f"container config: unexpected values {wrong}")
print("container config:", sys.argv[1])
PY
