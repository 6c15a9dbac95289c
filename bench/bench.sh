#!/bin/sh
# Raises the open-file limit to the hard limit (10k SSE connections need 10k
# descriptors in the server and as many across the load processes), then runs
# the compiled orchestrator with the arguments given (--quick, --only, --profile).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec node "$(dirname "$0")/dist/run.js" "$@"
