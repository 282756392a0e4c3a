#!/usr/bin/env bash
# One command to see Motey work: set everything up, start a local cluster (a Mosquitto
# broker and three nodes on 127.0.1.1-3, see scripts/start_test_setup.sh), post
# scripts/demo-blueprint.yaml to node 1 and follow the service until it runs. The image
# that needs the capability "camera" lands on node 2, the node that has one.
#   scripts/demo.sh          set up, start, deploy, show
#   scripts/demo.sh stop     terminate the services and stop nodes and broker
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${MOTEY_VENV:-$ROOT/.venv}
API=http://127.0.1.1:5023/v1

json() { "$VENV/bin/python" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

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

echo "==> deploying scripts/demo-blueprint.yaml to node 1"
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
curl -fsS "$API/service/$id" | json "'\n'.join('  image %s (needs %s) runs on node %s: %s' % (i['name'], i['capabilities'] or 'nothing', i['node'], i['state']) for i in d['images'])"
cat <<MSG

REST API of node 1:  $API   (OpenAPI: $API/openapi.json; nodes 2 and 3: 127.0.1.2, 127.0.1.3)
Web client:          http://127.0.1.1:5023/
Demo web app:        http://127.0.1.1:18080/  (served by the first image)
Cluster status:      scripts/start_test_setup.sh status
Stop it all:         scripts/demo.sh stop
MSG
