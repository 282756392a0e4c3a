#!/usr/bin/env bash
# A local Motey cluster on one machine (thesis 5.2): a Mosquitto broker and N nodes,
# each on its own loopback address (127.0.1.1, 127.0.1.2, ...) with the standard ports
# and its own capabilities, all sharing the local Docker engine. By default it is a
# secure cell (`motey cell init` in <setup dir>/cell: CA, TLS broker with its ACL,
# per-node credentials, admin token in <setup dir>/cell/admin.token).
#
#   scripts/start_test_setup.sh [start] [N]   start the broker and N nodes (default 3)
#   scripts/start_test_setup.sh status        show what runs and the cluster each node sees
#   scripts/start_test_setup.sh demo [FILE]   start (if needed), post a blueprint (default
#                                             scripts/demo-blueprint.yaml: one image needs
#                                             'camera') to node 1 and show where images run
#   scripts/start_test_setup.sh stop          terminate the nodes' services, stop the nodes,
#                                             then the broker (by pid file)
#   scripts/start_test_setup.sh clean         stop, then delete var/test_setup
#
# Environment: MOTEY_VENV (default .venv), MOTEY_SETUP_DIR (default var/test_setup),
# MOTEY_SETUP_NET (default 127.0.1), MOTEY_SETUP_BROKER_IP (default <net>.254),
# MOTEY_SETUP_MQTT_PORT (default 8883 secure, 1883 open), MOTEY_SETUP_MODE (secure or
# open; default secure). Linux routes all of 127.0.0.0/8 to the loopback interface, so
# the addresses need no configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${MOTEY_VENV:-$ROOT/.venv}
DIR=${MOTEY_SETUP_DIR:-$ROOT/var/test_setup}
NET=${MOTEY_SETUP_NET:-127.0.1}
BROKER_IP=${MOTEY_SETUP_BROKER_IP:-$NET.254}
MODE=${MOTEY_SETUP_MODE:-secure}
case "$MODE" in secure) DEFAULT_PORT=8883 SCHEME=https ;; open) DEFAULT_PORT=1883 SCHEME=http ;;
  *) echo "start_test_setup: MOTEY_SETUP_MODE must be secure or open, got '$MODE'" >&2; exit 2 ;;
esac
MQTT_PORT=${MOTEY_SETUP_MQTT_PORT:-$DEFAULT_PORT}
CELL=$DIR/cell
# Capabilities of node 1, 2, 3, ... (repeating); node 1 has none beyond the detected ones.
CAPS=("" "camera,zigbee" "gpio,zigbee" "bluetooth" "camera,gpio")

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { echo "start_test_setup: $*" >&2; exit 1; }

# True when the pid in $1 belongs to a live process whose command line contains $2, so
# that a stale pid file never makes us signal an unrelated process.
alive() {
  local pid_file=$1 marker=$2 pid cmdline
  [ -f "$pid_file" ] || return 1
  pid=$(cat "$pid_file")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"$marker"* ]]
}

# Stop the process of a pid file with SIGTERM, waiting up to $3 seconds, then SIGKILL.
stop_pid() {
  local pid_file=$1 marker=$2 wait_s=${3:-20} pid i
  if alive "$pid_file" "$marker"; then
    pid=$(cat "$pid_file")
    kill -TERM "$pid"
    for ((i = 0; i < wait_s * 10; i++)); do
      alive "$pid_file" "$marker" || break
      sleep 0.1
    done
    if alive "$pid_file" "$marker"; then
      echo "  pid $pid did not stop in ${wait_s}s; killing it" >&2
      kill -KILL "$pid"
    fi
    echo "  stopped pid $pid ($marker)"
  fi
  rm -f "$pid_file"
}

# curl against a node's REST API: in a secure cell verified against the cell's CA and
# with the cell's admin token.
api() {
  if [ "$MODE" = secure ]; then
    curl -fsS --cacert "$CELL/ca.crt" -H "Authorization: Bearer $(cat "$CELL/admin.token")" "$@"
  else
    curl -fsS "$@"
  fi
}

wait_http() {
  local url=$1 i
  for ((i = 0; i < 150; i++)); do
    api -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}

json() { "$VENV/bin/python" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

node_dirs() { find "$DIR" -maxdepth 1 -type d -name 'node-*' 2>/dev/null | sort -V; }

start_broker() {
  local conf=$DIR/mosquitto.conf pid_file=$DIR/mosquitto.pid bin
  if alive "$pid_file" "$conf"; then
    echo "  broker already runs (pid $(cat "$pid_file"))"
    return
  fi
  bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
  [ -x "$bin" ] || die "mosquitto is not installed (run scripts/setup.sh)"
  if [ "$MODE" = secure ]; then
    # The cell's generated configuration (TLS, client certificates, ACL). The setup
    # folder may not be readable by the mosquitto user, so a root broker stays root.
    { cat "$CELL/broker/mosquitto.conf"; echo "log_dest stdout"
      if [ "$(id -u)" = 0 ]; then echo "user root"; fi; } >"$conf"
  else
    printf 'listener %s %s\nallow_anonymous true\npersistence false\nlog_dest stdout\n' \
      "$MQTT_PORT" "$BROKER_IP" >"$conf"
  fi
  nohup "$bin" -c "$conf" >"$DIR/mosquitto.log" 2>&1 &
  echo $! >"$pid_file"
  for _ in $(seq 1 50); do
    if ! alive "$pid_file" "$conf"; then
      die "mosquitto did not start on $BROKER_IP:$MQTT_PORT (port taken? set MOTEY_SETUP_MQTT_PORT); see $DIR/mosquitto.log"
    fi
    (exec 3<>"/dev/tcp/$BROKER_IP/$MQTT_PORT") 2>/dev/null && break
    sleep 0.1
  done
  echo "  broker $([ "$MODE" = secure ] && echo mqtts || echo mqtt)://$BROKER_IP:$MQTT_PORT (pid $(cat "$pid_file"))"
}

write_node_config() {
  local n=$1 ip=$2 caps=$3 dir=$DIR/node-$1
  mkdir -p "$dir"
  cat >"$dir/config.ini" <<INI
; Generated by scripts/start_test_setup.sh; node $n of the local test cluster.
[GENERAL]
pid = motey.pid
[LOGGER]
log_path = log
[DATABASE]
path = db
[NODE]
ip = $ip
name = motey-node-$n
capabilities = $caps
[MQTT]
ip = $BROKER_IP
port = $MQTT_PORT
keepalive = 5
presence_interval = 5
[ZEROMQ]
capability_engine_ipc_path = $dir/capability_engine.ipc
[DOCKER]
stop_timeout = 2
[SECURITY]
mode = $MODE
credentials = $([ "$MODE" = secure ] && echo credentials)
INI
}

# The cell (once) and a node's credentials (once per node), made by `motey cell`.
ensure_cell() {
  [ "$MODE" = secure ] || return 0
  if [ ! -f "$CELL/ca.key" ]; then
    "$VENV/bin/python" -m motey cell init --dir "$CELL" --broker "$BROKER_IP:$MQTT_PORT" \
      | sed -n '/^created cell/p;/admin.token/p'
  fi
}

ensure_credentials() {
  local n=$1 ip=$2 dir=$DIR/node-$1
  [ "$MODE" = secure ] && [ ! -f "$dir/credentials/node.crt" ] || return 0
  mkdir -p "$dir"
  "$VENV/bin/python" -m motey cell add-node --dir "$CELL" --name "motey-node-$n" --ip "$ip" \
    --out "$dir/credentials" >/dev/null
}

start_node() {
  local n=$1 ip=$NET.$1 caps=${CAPS[$(( ($1 - 1) % ${#CAPS[@]} ))]}
  local dir=$DIR/node-$n
  local conf=$dir/config.ini pid_file=$dir/node.pid
  if alive "$pid_file" "$conf"; then
    echo "  node $n already runs (pid $(cat "$pid_file"))"
    return
  fi
  ensure_credentials "$n" "$ip"
  write_node_config "$n" "$ip" "$caps"
  (
    cd "$dir" || exit 1
    nohup "$VENV/bin/python" -m motey run --config "$conf" >"$dir/stdout.log" 2>&1 &
    echo $! >"$pid_file"
  )
}

cmd_start() {
  local count=${1:-3} n
  [[ $count =~ ^[0-9]+$ ]] && [ "$count" -ge 1 ] && [ "$count" -le 250 ] \
    || die "the number of nodes must be 1..250, got '$count'"
  [ -x "$VENV/bin/python" ] || die "no virtual environment at $VENV (run scripts/setup.sh)"
  command -v curl >/dev/null || die "curl is required"
  mkdir -p "$DIR"
  say "starting a Mosquitto broker and $count Motey nodes ($MODE mode) in $DIR"
  ensure_cell
  start_broker
  for ((n = 1; n <= count; n++)); do start_node "$n"; done
  for ((n = 1; n <= count; n++)); do
    wait_http "$SCHEME://$NET.$n:5023/v1/node" \
      || die "node $n did not come up; see $DIR/node-$n/stdout.log"
  done
  # every node sees the other count-1 nodes
  for ((n = 1; n <= count; n++)); do
    for _ in $(seq 1 50); do
      seen=$(api "$SCHEME://$NET.$n:5023/v1/nodes" | json "sum(1 for x in d if not x.get('self'))")
      [ "$seen" -ge $((count - 1)) ] && break
      sleep 0.2
    done
  done
  cmd_status
}

cmd_status() {
  local dir n conf ip
  if alive "$DIR/mosquitto.pid" "$DIR/mosquitto.conf"; then
    echo "broker  $MODE mode, port $BROKER_IP:$MQTT_PORT  pid $(cat "$DIR/mosquitto.pid")"
  else
    echo "broker  not running"
  fi
  for dir in $(node_dirs); do
    n=${dir##*/node-}
    conf=$dir/config.ini
    ip=$(sed -n 's/^ip = \(127\.[0-9.]*\)$/\1/p' "$conf" | head -1)
    if alive "$dir/node.pid" "$conf"; then
      caps=$(api "$SCHEME://$ip:5023/v1/capabilities" 2>/dev/null \
        | json "','.join(sorted(c['capability'] for c in d if c.get('source') == 'config')) or '-'" \
        || echo "?")
      peers=$(api "$SCHEME://$ip:5023/v1/nodes" 2>/dev/null \
        | json "sum(1 for x in d if not x.get('self') and x['state'] == 'REACHABLE')" || echo "?")
      echo "node $n  $SCHEME://$ip:5023/v1  pid $(cat "$dir/node.pid")  capabilities: $caps  peers: $peers"
    else
      echo "node $n  not running"
    fi
  done
  cat <<MSG

Web client of node 1:  $SCHEME://$NET.1:5023/
Logs:                  $DIR/node-N/stdout.log, $DIR/mosquitto.log
Stop everything:       scripts/start_test_setup.sh stop
MSG
  if [ "$MODE" = secure ]; then
    cat <<MSG
Admin token:           $CELL/admin.token (log in to the web client with it)
Cell CA certificate:   $CELL/ca.crt (import it into the browser as a trusted
                       authority, or curl --cacert it)
Nodes a node knows:    curl --cacert $CELL/ca.crt -H "Authorization: Bearer \$(cat $CELL/admin.token)" $SCHEME://$NET.1:5023/v1/nodes
MSG
  else
    echo "Nodes a node knows:    curl http://$NET.1:5023/v1/nodes"
  fi
}

# Terminate every service the running nodes own, so no container outlives the cluster.
terminate_services() {
  local dir ip ids id pending
  for dir in $(node_dirs); do
    alive "$dir/node.pid" "$dir/config.ini" || continue
    ip=$(sed -n 's/^ip = \(127\.[0-9.]*\)$/\1/p' "$dir/config.ini" | head -1)
    ids=$(api "$SCHEME://$ip:5023/v1/service" 2>/dev/null \
      | json "' '.join(s['id'] for s in d if s['state'] != 'TERMINATED')" || true)
    for id in $ids; do
      api -o /dev/null -X DELETE "$SCHEME://$ip:5023/v1/service/$id" \
        && echo "  terminating service $id on node ${dir##*/node-}"
    done
    for _ in $(seq 1 100); do
      pending=$(api "$SCHEME://$ip:5023/v1/service" 2>/dev/null \
        | json "sum(1 for s in d if s['state'] == 'STOPPING')" || echo 0)
      [ "$pending" = 0 ] && break
      sleep 0.3
    done
  done
}

cmd_stop() {
  local dir
  say "stopping the local test cluster in $DIR"
  terminate_services
  for dir in $(node_dirs); do
    stop_pid "$dir/node.pid" "$dir/config.ini" 30 &
  done
  wait
  stop_pid "$DIR/mosquitto.pid" "$DIR/mosquitto.conf" 10
}

cmd_demo() {
  local blueprint=${1:-$ROOT/scripts/demo-blueprint.yaml} base=$SCHEME://$NET.1:5023/v1 id state now key
  [ -f "$blueprint" ] || die "blueprint $blueprint not found"
  alive "$DIR/node-2/node.pid" "$DIR/node-2/config.ini" || cmd_start 3
  say "deploying $blueprint to node 1"
  # One Idempotency-Key for this deploy: curl's retries after a lost answer reuse it, so
  # the node creates the service once.
  key=$(python3 -c 'import uuid; print(uuid.uuid4())')
  id=$(api --retry 3 --retry-connrefused -X POST -H 'Content-Type: application/x-yaml' \
    -H "Idempotency-Key: $key" --data-binary @"$blueprint" "$base/service" | json "d['id']")
  echo "service id: $id"
  state=""
  for _ in $(seq 1 60); do
    now=$(api "$base/service/$id" | json "d['state'] + ' ' + d['state_message']")
    if [ "$now" != "$state" ]; then echo "  state: $now"; state=$now; fi
    case "$now" in RUNNING*|ERROR*) break ;; esac
    sleep 0.5
  done
  api "$base/service/$id" \
    | json "'\\n'.join('  image %s (needs %s) runs on node %s: %s' % (i['name'], i['capabilities'] or 'nothing', i['node'], i['state']) for i in d['images'])"
  echo "Terminate it: DELETE $base/service/$id (the web client, or curl as shown above)"
}

case "${1:-start}" in
  start) shift || true; cmd_start "${1:-3}" ;;
  [0-9]*) cmd_start "$1" ;;
  status) cmd_status ;;
  stop) cmd_stop ;;
  demo) cmd_demo "${2:-}" ;;
  clean) cmd_stop; rm -rf "$DIR"; echo "  removed $DIR" ;;
  -h|--help|help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$1' (start [N], status, demo, stop, clean)" ;;
esac
