#!/usr/bin/env bash
# Runs a `jetim bench` scenario on a throwaway stack: a private nats-server (state in a
# temporary directory, a free port) and a fresh database, both gone afterwards, and a release
# build of jetim. For chat, group and connect it also starts `jetim all` on free ports, as its
# own process, and the bench reaches it the way clients do. Nothing else on the machine is
# touched.
#
#   tests/bench.sh rebuild --events 200000 --report /tmp/rebuild.json
#   tests/bench.sh chat --pairs 500 --rate 10000 --seconds 20 --plot /tmp/chat.svg
#   tests/bench.sh chat --rate 5000 --step 5000 --seconds 10
#   tests/bench.sh chat --rate 5000 --sdk go     # as the native Go SDK: gzip'd gob frames
#   tests/bench.sh group --groups 10 --members 200 --rate 1000
#   tests/bench.sh connect --connections 19000
#   tests/bench.sh connect --connections 50000 --gateways 3 --workers 3
#
# For chat and group the report ends with the CPU time jetim, nats-server, Postgres (every
# process named postgres) and the load client spent while the load ran (`--cpu`).
#
# --gateways N (connect only) starts N-1 more gateway processes (`jetim gateway`) beside
# `jetim all`: one process can hold only as many sockets as its open-file limit. The bench
# spreads the connections over them and measures the memory of all of them.
#
# JETIM_BIN=/path/to/jetim runs that build instead of building this checkout: to compare two
# builds on the same day, keep a copy of the older one.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root/ops/lib.sh"

[ $# -ge 1 ] || die "usage: tests/bench.sh rebuild|chat|group|connect [jetim bench options]"
scenario="$1"
shift
STATE_DIR=$(mktemp -d)
chmod 755 "$STATE_DIR"
database="jetim_bench_$$"
export JETIM_NATS_PORT=$(first_free_port 26222)
OWN_NATS_PID=""
PG_ADMIN_URL=""
server_pid=""
extra_pids=()

finish() {
  local status=$?
  for pid in "${extra_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    if [ "$status" -ne 0 ]; then
      echo "jetim's log (the last 40 lines):" >&2
      tail -n 40 "$STATE_DIR/jetim.log" >&2 || true
    fi
  fi
  stop_own_nats
  [ -n "$PG_ADMIN_URL" ] && psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" >/dev/null 2>&1
  stop_own_postgres
  rm -rf "$STATE_DIR"
  exit "$status"
}
trap finish EXIT

# Every connection is a file descriptor, in the bench and in jetim.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [ -n "${JETIM_BIN:-}" ]; then
  [ -x "$JETIM_BIN" ] || die "JETIM_BIN=$JETIM_BIN is not an executable"
else
  ensure_rust
  build_jetim
fi
start_own_nats
ensure_postgres
create_database "$PG_ADMIN_URL" "$database"
export JETIM_NATS__URL="$NATS_URL"
export JETIM_POSTGRES__URL="${PG_ADMIN_URL%/*}/$database"
RUST_LOG=warn "$JETIM_BIN" migrate >/dev/null

# --gateways is this script's; the rest goes to the bench.
gateways=1
args=()
while [ $# -gt 0 ]; do
  if [ "$1" = --gateways ]; then
    [ "$scenario" = connect ] || die "--gateways is for the connect scenario"
    gateways="${2:?--gateways takes a number}"
    shift 2
  else
    args+=("$1")
    shift
  fi
done

extra=()
if [ "$scenario" != rebuild ]; then
  api_port=$(first_free_port 20402)
  export JETIM_API__LISTEN="127.0.0.1:$api_port"
  export JETIM_GATEWAY__LISTEN="127.0.0.1:$(first_free_port 21401)"
  RUST_LOG="${RUST_LOG:-warn}" "$JETIM_BIN" all >"$STATE_DIR/jetim.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 600); do
    kill -0 "$server_pid" 2>/dev/null || die "jetim exited: $(tail -n 20 "$STATE_DIR/jetim.log")"
    curl -fsS "http://127.0.0.1:$api_port/healthz" 2>/dev/null | grep -q '"status":"ok"' && break
    sleep 0.2
  done
  log "jetim (pid $server_pid) serves the API on $JETIM_API__LISTEN, the gateway on $JETIM_GATEWAY__LISTEN"
  pids="$server_pid"
  addresses="$JETIM_GATEWAY__LISTEN"
  for _ in $(seq 2 "$gateways"); do
    listen="127.0.0.1:$(first_free_port $((${addresses##*:} + 1)))"
    JETIM_GATEWAY__LISTEN="$listen" RUST_LOG="${RUST_LOG:-warn}" "$JETIM_BIN" gateway \
      >>"$STATE_DIR/jetim.log" 2>&1 &
    extra_pids+=($!)
    for _ in $(seq 1 600); do
      kill -0 "$!" 2>/dev/null || die "jetim gateway exited: $(tail -n 20 "$STATE_DIR/jetim.log")"
      curl -s -o /dev/null "http://$listen/" && break
      sleep 0.2
    done
    log "another gateway (pid $!) on $listen"
    pids="$pids,$!"
    addresses="$addresses,$listen"
  done
  [ "$scenario" = connect ] && extra=(--server-pid "$pids" --gateway "$addresses")
  # What each process on the box spends of the cores under load; Postgres is every process
  # named postgres on the machine (a backend per connection).
  # A build from before `--cpu` (JETIM_BIN, to compare with) runs without it.
  if { [ "$scenario" = chat ] || [ "$scenario" = group ]; } &&
    "$JETIM_BIN" bench "$scenario" --help 2>/dev/null | grep -q -- '--cpu'; then
    extra=(--cpu "jetim=$pids" --cpu "nats-server=$OWN_NATS_PID" --cpu "postgres=comm:postgres")
  fi
fi
"$JETIM_BIN" bench "$scenario" "${extra[@]}" "${args[@]}"
