#!/usr/bin/env bash
# The stack test: ops/run from this checkout, with its own state directory, NATS port, API
# port and database, reaches a healthy /healthz; `ops/jetim ops streams` sees jetim's streams
# on the same stack; SIGTERM stops jetim and the servers cleanly; a second run reuses the data.
set -euo pipefail
source "$(dirname "$0")/stack-lib.sh"
stack_init stack

start_stack 1
streams=$("$root/ops/jetim" ops streams)
echo "$streams"
echo "$streams" | grep -q '^IM_CONV ' || fail "ops streams does not list IM_CONV"
echo "$streams" | grep -q '^IM_USER ' || fail "ops streams does not list IM_USER"
echo "$streams" | grep -qE "^IM_CONV +push " || fail "ops streams does not list the push consumer"

stop_stack 1
echo "stack test: SIGTERM stopped jetim and its nats-server"

start_stack 2
grep -q 'Unchanged' "$state/run-2.log" || fail "the second run did not find its streams again"
stop_stack 2
echo "stack test: the second run reused the data"
echo "stack test: ok"
