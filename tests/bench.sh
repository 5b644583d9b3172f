#!/usr/bin/env bash
# Runs a `jetim bench` scenario on a throwaway stack: a private nats-server (state in a
# temporary directory, a free port) and a fresh database, both gone afterwards, and a release
# build of jetim. Nothing else on the machine is touched.
#
#   tests/bench.sh rebuild --events 200000 --report /tmp/rebuild.json
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root/ops/lib.sh"

[ $# -ge 1 ] || die "usage: tests/bench.sh SCENARIO [jetim bench options]"
STATE_DIR=$(mktemp -d)
chmod 755 "$STATE_DIR"
database="jetim_bench_$$"
export JETIM_NATS_PORT=$(first_free_port 26222)
OWN_NATS_PID=""
PG_ADMIN_URL=""

finish() {
  local status=$?
  stop_own_nats
  [ -n "$PG_ADMIN_URL" ] && psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"$database\"" >/dev/null 2>&1
  stop_own_postgres
  rm -rf "$STATE_DIR"
  exit "$status"
}
trap finish EXIT

ensure_rust
build_jetim
start_own_nats
ensure_postgres
create_database "$PG_ADMIN_URL" "$database"
export JETIM_NATS__URL="$NATS_URL"
export JETIM_POSTGRES__URL="${PG_ADMIN_URL%/*}/$database"
"$JETIM_BIN" migrate >/dev/null
"$JETIM_BIN" bench "$@"
