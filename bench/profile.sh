#!/usr/bin/env bash
# CPU and allocation profiles of Postern under W1 and W2, with the credential
# cache on (default) and off, and under W3 (50 MiB messages). Needs setup.sh and start-sink.sh first (run.sh
# does both). Writes $OUT/profile/*.pprof and a text top list of each.
# PROFILE_TTLS ("5m 0") and PROFILE_WORKLOADS (all) narrow it down, e.g.
# PROFILE_TTLS=5m PROFILE_WORKLOADS=W1 bench/profile.sh
# W4 (cache on only): W4_SESSIONS idle authenticated sessions (2000) held for
# 10 s; the heap profile (in use) is taken while they are held.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
P=$OUT/profile
mkdir -p "$P"
(cd "$repo" && go build -o "$BIN/postern-profile" ./cmd/postern)
port=$((base + 3587)) pp=$((base + 2060))
wait_port "$SINK_PORT" 5
gen() {
  "$BIN/postern-bench" --addr "127.0.0.1:$port" --mode starttls --insecure --server-name bench.test \
    --user "$BENCH_USER" --password "$BENCH_PASSWORD" --from "$BENCH_USER" --to rcpt@example.net \
    --duration 60s --timeout 30s --json "$@"
}
for ttl in ${PROFILE_TTLS:-5m 0}; do
  stop_pid profile
  mapfile -t bench_flags < <(postern_bench_flags "$BIN/postern-profile")
  start_bg profile "$BIN/postern-profile" serve --hostname bench.test --listen "starttls=127.0.0.1:$port" \
    --metrics "127.0.0.1:$pp" --pprof --log-level warn --max-connections-per-ip 0 "${bench_flags[@]}" \
    --max-message-size 104857600 --auth-max-failures 100000 \
    --upstream "127.0.0.1:$SINK_PORT" --users "$USERS" --tls-cert "$CERT" --tls-key "$KEY" --auth-cache-ttl "$ttl"
  wait_port "$port"
  gen --concurrency 5 --connections 10 --messages-per-conn 1 >/dev/null # warm-up
  wls="W1 W2"; [ "$ttl" = 0 ] || wls="W1 W2 W3 W4"
  for wl in $wls; do
    case " ${PROFILE_WORKLOADS:-$wls} " in *" $wl "*) ;; *) continue ;; esac
    case $wl in
      W1) args="--concurrency 50 --connections ${W1_CONNS:-400} --messages-per-conn 10" ;;
      W2) args="--concurrency 50 --connections ${W2_CONNS:-800} --messages-per-conn 1" ;;
      W3) args="--concurrency 1 --connections 1 --messages-per-conn ${W3_MSGS:-10} --size 52428800" ;;
    esac
    name=$wl-cache$ttl
    if [ "$wl" = W4 ]; then
      gen --idle "${W4_SESSIONS:-2000}" --hold 10s --concurrency 50 --rss-pid "$(pid_of profile)" \
        --label "profile-cache$ttl" --workload W4 >"$P/$name.json" &
      gpid=$!
      for ((i = 0; i < 600; i++)); do # until the sessions are held (VmRSS stops growing is not needed: 10 s hold)
        n=$(curl -s "http://127.0.0.1:$pp/metrics" | sed -n 's/^postern_active_sessions[^ ]* \([0-9]*\).*/\1/p' | head -1)
        [ "${n:-0}" -ge "${W4_SESSIONS:-2000}" ] && break
        sleep 0.1
      done
      curl -s -o "$P/$name.heap.pprof" "http://127.0.0.1:$pp/debug/pprof/heap?gc=1"
      wait $gpid
      go tool pprof -top -sample_index=inuse_space -nodecount=25 "$P/$name.heap.pprof" >"$P/$name.heap.txt" 2>/dev/null || true
      log "$name: $(cut -c1-300 "$P/$name.json")"
      continue
    fi
    curl -s -o "$P/$name.cpu.pprof" "http://127.0.0.1:$pp/debug/pprof/profile?seconds=${PROFILE_SECONDS:-8}" &
    cpid=$!
    sleep 0.3
    # shellcheck disable=SC2086
    gen $args --label "profile-cache$ttl" --workload $wl >"$P/$name.json"
    wait $cpid
    curl -s -o "$P/$name.allocs.pprof" "http://127.0.0.1:$pp/debug/pprof/allocs"
    go tool pprof -top -nodecount=35 "$P/$name.cpu.pprof" >"$P/$name.cpu.txt" 2>/dev/null || true
    go tool pprof -top -cum -nodecount=45 "$P/$name.cpu.pprof" >"$P/$name.cpu-cum.txt" 2>/dev/null || true
    go tool pprof -top -sample_index=alloc_space -nodecount=25 "$P/$name.allocs.pprof" >"$P/$name.allocs.txt" 2>/dev/null || true
    log "$name: $(cut -c1-200 "$P/$name.json")"
  done
done
stop_pid profile
log "profiles in $P"
