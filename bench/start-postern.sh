#!/usr/bin/env bash
# Postern: STARTTLS and implicit TLS listeners, forwarding to the sink.
# POSTERN_ARGS adds flags (e.g. POSTERN_ARGS="--auth-cache-ttl 1m").
# --max-connections-per-ip 0: the load generator is one address (W4 holds 5,000).
# postern_bench_flags (lib.sh): no sending limits, no control socket.
# --auth-max-failures: in-flight AUTHs count against that one address until
# they succeed (lockout reservation), and 50 concurrent bcrypt logins
# (postern-nocache) would otherwise be refused 421 as guessing.
# `start-postern.sh postern-nocache` starts a second instance with the
# credential cache off (--auth-cache-ttl 0) on ports 1000 higher;
# `start-postern.sh postern-before` runs $BIN/postern-before (run.sh builds it
# from BEFORE_REV) with the defaults, for before/after in the same run.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
name=${1:-postern}
extra=() bin=$BIN/postern
if [ "$name" = postern-nocache ]; then
  POSTERN_PORT=$POSTERN_NOCACHE_PORT POSTERN_TLS_PORT=$((POSTERN_NOCACHE_PORT - 122))
  extra=(--auth-cache-ttl 0)
fi
if [ "$name" = postern-before ]; then
  POSTERN_PORT=$POSTERN_BEFORE_PORT POSTERN_TLS_PORT=$((POSTERN_BEFORE_PORT - 122)) bin=$BIN/postern-before
fi
port_free "$POSTERN_PORT"; port_free "$POSTERN_TLS_PORT"
mapfile -t bench_flags < <(postern_bench_flags "$bin")
# shellcheck disable=SC2086
start_bg "$name" "$bin" serve --hostname bench.test \
  --listen "starttls=127.0.0.1:$POSTERN_PORT" --listen "tls=127.0.0.1:$POSTERN_TLS_PORT" \
  --upstream "127.0.0.1:$SINK_PORT" --users "$USERS" --tls-cert "$CERT" --tls-key "$KEY" \
  --max-message-size 104857600 --max-connections-per-ip 0 --auth-max-failures 100000 --log-level warn "${bench_flags[@]}" ${POSTERN_ARGS:-} "${extra[@]}"
wait_port "$POSTERN_PORT"
log "$name on 127.0.0.1:$POSTERN_PORT (starttls) and :$POSTERN_TLS_PORT (tls) (pid $(pid_of "$name"))"
