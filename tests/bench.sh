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
# --profile DIR (chat, group, rebuild) samples every process on the box with perf, call stacks
# included, for --profile-seconds (5) from the first progress line of the measured load (a
# rate step, or the rebuild), or until the bench ends, and leaves in DIR
# flamegraph.svg (every process, the width of a frame its CPU time), stacks.folded, perf.data
# and summary.txt: each process' share of the CPU and jetim's functions by their own time,
# printed after the report. It installs perf and the pinned inferno tools when missing.
#
#   tests/bench.sh chat --pairs 500 --rate 8000 --seconds 12 --profile /tmp/chat-profile
#   tests/bench.sh rebuild --events 600000 --profile /tmp/rebuild-profile
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

# --gateways and --profile are this script's; the rest goes to the bench.
gateways=1
profile_dir=""
profile_seconds=5
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --gateways)
      [ "$scenario" = connect ] || die "--gateways is for the connect scenario"
      gateways="${2:?--gateways takes a number}"
      shift 2 ;;
    --profile)
      [ "$scenario" != connect ] || die "--profile is for the chat, group and rebuild scenarios"
      profile_dir="${2:?--profile takes a directory}"
      shift 2 ;;
    --profile-seconds)
      profile_seconds="${2:?--profile-seconds takes a number}"
      shift 2 ;;
    *)
      args+=("$1")
      shift ;;
  esac
done
if [ -n "$profile_dir" ]; then
  ensure_profiler
  mkdir -p "$profile_dir"
  profile_dir=$(cd "$profile_dir" && pwd)
fi

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
if [ -z "$profile_dir" ]; then
  "$JETIM_BIN" bench "$scenario" "${extra[@]}" "${args[@]}"
  exit
fi

# --profile: once the load runs (the first progress line of a rate step, or of the rebuild
# itself), perf samples every process on the box with its call stacks for --profile-seconds,
# or until the bench ends; then the samples are folded by process and drawn as a flamegraph.
progress="$STATE_DIR/bench.progress"
"$JETIM_BIN" bench "$scenario" "${extra[@]}" "${args[@]}" 2> >(tee "$progress" >&2) &
bench_pid=$!
marker='^step '
[ "$scenario" = rebuild ] && marker='^rebuilding '
until grep -q "$marker" "$progress" 2>/dev/null || ! kill -0 "$bench_pid" 2>/dev/null; do
  sleep 0.2
done
perf_pid=""
if kill -0 "$bench_pid" 2>/dev/null; then
  log "profiling: perf samples the whole box for up to $profile_seconds s"
  perf record -a -F 499 --call-graph dwarf,16384 -o "$profile_dir/perf.data" \
    -- sleep "$profile_seconds" >"$profile_dir/perf-record.log" 2>&1 &
  perf_pid=$!
fi
status=0
wait "$bench_pid" || status=$?
[ -n "$perf_pid" ] || die "the bench ended before its load began; nothing was profiled"
kill -INT "$perf_pid" 2>/dev/null || true
wait "$perf_pid" || true
[ -s "$profile_dir/perf.data" ] \
  || die "perf recorded nothing (the bench exited $status): $(tail -n 5 "$profile_dir/perf-record.log")"

# Each process' samples under one name: jetim's server processes, the bench (the load
# client, or for rebuild the process that rebuilds), nats-server, Postgres' processes, idle.
roles="$OWN_NATS_PID=nats-server"
if [ "$scenario" = rebuild ]; then
  roles="$roles $bench_pid=jetim"
else
  roles="$roles $bench_pid=load-client"
  for pid in ${pids//,/ }; do roles="$roles $pid=jetim"; done
fi
perf script -F +pid --no-inline -i "$profile_dir/perf.data" 2>/dev/null \
  | "$INFERNO_BIN/inferno-collapse-perf" --pid --all \
  | awk -v roles="$roles" '
      BEGIN { n = split(roles, pairs, " "); for (i = 1; i <= n; i++) { split(pairs[i], kv, "="); role[kv[1]] = kv[2] } }
      {
        root = substr($0, 1, index($0, ";") - 1)
        if (root == "") root = $1
        pid = root; sub(/.*-/, "", pid)
        comm = root; sub(/-[^-]*$/, "", comm)
        name = (pid in role) ? role[pid] : (comm == "postgres") ? "postgres" : (pid == "0") ? "idle" : "other:" comm
        print name substr($0, length(root) + 1)
      }' >"$profile_dir/stacks.folded"
"$INFERNO_BIN/inferno-flamegraph" --title "jetim bench $scenario ${args[*]}" \
  --subtitle "every process on the box, $(nproc) cores; width: CPU time" --countname ns \
  <"$profile_dir/stacks.folded" >"$profile_dir/flamegraph.svg"
# Each process' share, and jetim's functions by the time spent in them alone (the leaves of
# its stacks), as "kind<TAB>share<TAB>name" lines, largest first.
awk -v main=jetim '
  {
    weight = $NF
    frames = split(substr($0, 1, length($0) - length($NF) - 1), frame, ";")
    total += weight
    process = frame[1]
    if (process ~ /^other:/) process = "other processes"
    by_process[process] += weight
    if (frame[1] == main) { own[frame[frames]] += weight; main_total += weight }
  }
  END {
    for (name in by_process) printf "process\t%.6f\t%s\n", by_process[name] / total, name
    for (name in own) printf "function\t%.6f\t%s\n", own[name] / main_total, name
  }' "$profile_dir/stacks.folded" | sort -t "$(printf '\t')" -k2,2 -rn >"$STATE_DIR/shares"
{
  printf '%-40s %10s %8s\n' "WHERE THE CPU WENT (perf, every process)" "MS/S" "SHARE"
  awk -F '\t' -v cores="$(nproc)" '$1 == "process" {
    printf "%-40s %10.0f %7.1f%%\n", $3, $2 * cores * 1000, $2 * 100 }' "$STATE_DIR/shares"
  printf '\n%-88s %8s\n' "JETIM'S FUNCTIONS BY THEIR OWN TIME (the top 20)" "SHARE"
  awk -F '\t' '$1 == "function" && shown++ < 20 {
    printf "%-88s %7.1f%%\n", substr($3, 1, 88), $2 * 100 }' "$STATE_DIR/shares"
} >"$profile_dir/summary.txt"
cat "$profile_dir/summary.txt"
log "profile: $profile_dir/flamegraph.svg (open it in a browser), stacks.folded, perf.data (perf report -i)"
exit "$status"
