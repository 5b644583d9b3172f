#!/usr/bin/env bash
# The real-client suite: OpenIM's official SDKs (tests/compat, pinned in its lockfile),
# unmodified, against a jetim that ops/run starts from this checkout on private ports: the JS
# SDK in Node (JSON envelopes), then the Go SDK core compiled to wasm in headless Chromium
# (gob envelopes, as every native OpenIM app speaks). Installs Node, Chromium and the packages
# as needed. A failing scenario prints the SDK's own log or the browser's console.
set -euo pipefail
source "$(dirname "$0")/stack-lib.sh"
ensure_node
ensure_chromium
stack_init compat
(cd "$root/tests/compat" && npm ci --no-audit --no-fund --loglevel=error >&2)
start_stack 1
node "$root/tests/compat/run.mjs" --api "http://$JETIM_API__LISTEN" --ws "ws://$JETIM_GATEWAY__LISTEN"
node "$root/tests/compat/wasm.mjs" --api "http://$JETIM_API__LISTEN" --ws "ws://$JETIM_GATEWAY__LISTEN" \
  --chromium "$(command -v chromium)"
stop_stack 1
echo "compat test: ok"
