#!/usr/bin/env bash
# Times a REST write that waits for the messages projection while chat loads the server:
# OpenIM's /msg/mark_conversation_as_read, which waits twice (the read mark, then the read
# receipt it stores), called for 150 users, one every 20 ms, from the fifth second of a
# `tests/bench.sh chat --pairs 500 --seconds 30` run. Prints the calls' latency and then the
# bench's report (its CPU table included). docs/performance.md, twenty-first round.
#
#   tests/read-marks.sh                  # at 1,000 msg/s
#   tests/read-marks.sh --rate 300 --calls 100
#
# JETIM_BIN=/path/to/jetim runs that build, as for tests/bench.sh.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rate=1000
calls=150
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) rate="$2"; shift 2 ;;
    --calls) calls="$2"; shift 2 ;;
    *) echo "usage: tests/read-marks.sh [--rate MSG_PER_S] [--calls N]" >&2; exit 2 ;;
  esac
done

report=$(mktemp)
bench=""
finish() {
  local status=$?
  [ -n "$bench" ] && kill -TERM "$bench" 2>/dev/null && wait "$bench" 2>/dev/null
  rm -f "$report"
  exit "$status"
}
trap finish EXIT

"$root/tests/bench.sh" chat --pairs 500 --rate "$rate" --seconds 30 >"$report" 2>&1 &
bench=$!
for _ in $(seq 1 600); do
  grep -q '^step 0 at' "$report" && break
  if ! kill -0 "$bench" 2>/dev/null; then
    cat "$report" >&2
    echo "the bench ended before its load began" >&2
    exit 1
  fi
  sleep 1
done
grep -q '^step 0 at' "$report" || { cat "$report" >&2; echo "the load never began" >&2; exit 1; }
sleep 5
port=$(grep -o 'serves the API on 127.0.0.1:[0-9]*' "$report" | head -1 | cut -d: -f2)
python3 "$root/tests/read_marks.py" "http://127.0.0.1:$port" "$calls"
wait "$bench"
bench=""
grep -v '^\(ramp\|step [0-9]* at\) ' "$report"
