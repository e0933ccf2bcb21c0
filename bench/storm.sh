#!/usr/bin/env bash
# W5 login storm: N distinct users (bcrypt cost 10) each log in once over
# STARTTLS and QUIT, C at a time, against a fresh Postern (credential cache
# cold), twice in the same run: --auth-concurrency 0 (no bound on hash
# verifications at once) and the default (GOMAXPROCS). Prints set-up time
# (connect .. 235) p50/p99/max of each and the ratio of the p99s.
#
#   bench/storm.sh                      500 users, 50 at a time, 1 round
#   STORM_USERS=200 STORM_CONC=50 ROUNDS=2 bench/storm.sh
#
# Loopback only; every process is stopped by its recorded PID. Each run is
# capped at STORM_MAX (default 120s) by the load generator's --duration.
# bench/run.sh runs it as workload W5 (SKIP_SETUP=1, and the sink it already
# started is used and left running) and takes its JSON lines.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
N=${STORM_USERS:-500}
C=${STORM_CONC:-50}
ROUNDS=${ROUNDS:-1}
MAX=${STORM_MAX:-120s}
[ "${SKIP_SETUP:-}" = 1 ] || "$here/setup.sh"
own_sink=0
trap 'stop_pid storm-postern; [ $own_sink = 0 ] || stop_pid sink' EXIT

storm_users=$OUT/storm-users-$N logins=$OUT/storm-logins-$N
if [ ! -s "$logins" ]; then
  log "hashing $N bcrypt cost-10 passwords"
  "$BIN/postern-bench" storm-users --n "$N" --users "$storm_users" --logins "$logins"
fi
if ! { pid=$(pid_of sink) && [ -n "$pid" ] && alive "$pid"; }; then
  "$here/start-sink.sh"
  own_sink=1
fi

# one_run CAP: a fresh Postern with --auth-concurrency CAP (empty: the
# default), one storm, its JSON line on stdout.
one_run() {
  local cap=$1 args=()
  [ -z "$cap" ] || args=(--auth-concurrency "$cap")
  port_free "$STORM_PORT"
  # --auth-max-failures: the whole storm comes from 127.0.0.1, and in-flight
  # AUTHs count against that address until they succeed.
  start_bg storm-postern "$BIN/postern" serve --hostname bench.test \
    --listen "starttls=127.0.0.1:$STORM_PORT" --upstream "127.0.0.1:$SINK_PORT" \
    --users "$storm_users" --tls-cert "$CERT" --tls-key "$KEY" \
    --max-connections-per-ip 0 --auth-max-failures 100000 --log-level warn "${args[@]}"
  wait_port "$STORM_PORT"
  "$BIN/postern-bench" --addr "127.0.0.1:$STORM_PORT" --insecure --server-name bench.test \
    --logins "$logins" --connections "$N" --concurrency "$C" --messages-per-conn 0 \
    --duration "$MAX" --timeout 60s --workload W5 --label "auth-concurrency=${cap:-default}" --json
  stop_pid storm-postern
}

field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
for ((r = 1; r <= ROUNDS; r++)); do
  off=$(one_run 0)
  on=$(one_run "")
  echo "$off"
  echo "$on"
  p_off=$(field setup_p99_ms <<<"$off") p_on=$(field setup_p99_ms <<<"$on")
  printf 'W5 round %d: %d users, %d at a time, GOMAXPROCS=%s\n' "$r" "$N" "$C" "$(nproc)"
  for pair in "no bound (--auth-concurrency 0):$off" "bound (default, GOMAXPROCS):$on"; do
    j=${pair#*:}
    printf '  %-34s set-up p50 %.0f ms, p99 %.0f ms, max %.0f ms; %.1f logins/s; errors %s\n' "${pair%%:*}" \
      "$(field setup_p50_ms <<<"$j")" "$(field setup_p99_ms <<<"$j")" "$(field setup_max_ms <<<"$j")" \
      "$(field connections_per_s <<<"$j")" "$(field errors <<<"$j")"
  done
  awk -v a="$p_off" -v b="$p_on" 'BEGIN { if (b > 0) printf "  p99 no bound / p99 bound = %.2f\n", a / b }'
done
