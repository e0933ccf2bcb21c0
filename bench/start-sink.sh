#!/usr/bin/env bash
# The common upstream of every peer, and the plain ceiling: accepts and discards.
# `start-sink.sh sink-starttls`: a second sink that offers STARTTLS with the
# benchmark's certificate, the fair ceiling of a TLS-terminating proxy.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
name=${1:-sink}
if [ "$name" = sink-starttls ]; then
  port_free "$SINK_TLS_PORT"
  start_bg sink-starttls "$BIN/postern-bench" sink --listen "127.0.0.1:$SINK_TLS_PORT" --tls-cert "$CERT" --tls-key "$KEY"
  wait_port "$SINK_TLS_PORT"
  log "sink-starttls on 127.0.0.1:$SINK_TLS_PORT (pid $(pid_of sink-starttls))"
  exit 0
fi
port_free "$SINK_PORT"
start_bg sink "$BIN/postern-bench" sink --listen "127.0.0.1:$SINK_PORT"
wait_port "$SINK_PORT"
log "sink on 127.0.0.1:$SINK_PORT (pid $(pid_of sink))"
