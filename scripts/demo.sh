#!/usr/bin/env bash
# One command to see Motey work: set everything up, start a local secure cell (a TLS
# Mosquitto broker and three nodes on 127.0.1.1-3 with credentials from `motey cell`,
# see scripts/start_test_setup.sh), post
# scripts/demo-blueprint.yaml to node 1 and follow the service until it runs. The image
# that needs the capability "camera" lands on node 2, the node that has one.
#   scripts/demo.sh          set up, start, deploy, show
#   scripts/demo.sh stop     terminate the services and stop nodes and broker
set -euo pipefail
cd "$(dirname "$0")/.."
API=https://127.0.1.1:5023/v1
CELL=${MOTEY_SETUP_DIR:-var/test_setup}/cell

if [ "${1:-}" = stop ]; then
  exec ./scripts/start_test_setup.sh stop
fi
case "${1:-}" in
  "") ;;
  -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "demo.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac

./scripts/setup.sh
./scripts/start_test_setup.sh start 3

./scripts/start_test_setup.sh demo scripts/demo-blueprint.yaml
cat <<MSG

REST API of node 1:  $API   (OpenAPI: $API/openapi.json; nodes 2 and 3: 127.0.1.2, 127.0.1.3)
Web client:          https://127.0.1.1:5023/
Demo web app:        http://127.0.1.1:18080/  (served by the first image)
Admin token:         $CELL/admin.token  (paste it into the web client's login)
Trust the cell CA:   import $CELL/ca.crt into the browser as a certificate authority
                     (Chromium/Chrome: Settings > Privacy and security > Security >
                     Manage certificates > Authorities > Import; Firefox: Settings >
                     Certificates > View Certificates > Authorities > Import), or
                     curl --cacert $CELL/ca.crt -H "Authorization: Bearer \$(cat $CELL/admin.token)" $API/nodes
Cluster status:      scripts/start_test_setup.sh status
Stop it all:         scripts/demo.sh stop
MSG
