#!/usr/bin/env bash
# The real-client suite: OpenIM's official JS SDK (tests/compat, pinned in its lockfile),
# unmodified, against a jetim that ops/run starts from this checkout on private ports.
# Installs Node and the packages as needed. A failing scenario prints the SDK's own log.
set -euo pipefail
source "$(dirname "$0")/stack-lib.sh"
ensure_node
stack_init compat
(cd "$root/tests/compat" && npm ci --no-audit --no-fund --loglevel=error >&2)
start_stack 1
node "$root/tests/compat/run.mjs" --api "http://$JETIM_API__LISTEN" --ws "ws://$JETIM_GATEWAY__LISTEN"
stop_stack 1
echo "compat test: ok"
