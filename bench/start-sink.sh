#!/usr/bin/env bash
# The common upstream of every peer, and the plain ceiling: accepts and discards.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
port_free "$SINK_PORT"
start_bg sink "$BIN/postern-bench" sink --listen "127.0.0.1:$SINK_PORT"
wait_port "$SINK_PORT"
log "sink on 127.0.0.1:$SINK_PORT (pid $(pid_of sink))"
