#!/usr/bin/env bash
# The side-by-side benchmark: installs and starts every peer on loopback,
# runs W1..W5 against each in the same run (peers interleaved, RUNS rounds),
# and writes bench/RESULTS.md and bench/chart.svg from the medians.
#
#   bench/run.sh            SMALL preset (a few minutes)
#   FULL=1 bench/run.sh     the issue's numbers (W1 50x10x4KiB, W2, W3 5x50MiB, W4 5000 idle)
#
# W2x is W2 with the client offering only X25519 (--tls-groups x25519), so
# that every TLS peer does the same key exchange: nginx 1.22 on Debian 12's
# OpenSSL 3.0 has no ML-KEM, while Postern (Go) takes the client's default
# X25519MLKEM768 key share in W2.
#
# Every W1/W2/W2x measurement runs once per client shape in SHAPES
# (postern-bench --shape; default "waiting pipelining": a write and a wait
# per command, and RFC 2920 pipelining; both write the message with its
# final dot in one write); the report has one table per workload and shape.
#
# Environment: RUNS (3), SHAPES ("waiting pipelining"), PEERS ("postern postern-before postern-nocache postfix
# nginx nginx-fastauth haraka sink sink-starttls"), WORKLOADS ("W1 W2 W2x W3 W4 W5"),
# BEFORE_REV (main: the revision postern-before is built from), MAX_SECONDS
# (total-time cap), SKIP_INSTALL=1, POSTERN_ARGS (extra flags for postern
# serve), BENCH_PORT_BASE, BENCH_OUT.
#
# Every measurement also samples the CPU time of the peer's process tree
# (/proc utime+stime, reaped children included) before and after: CPU ms per
# message. W5 is bench/storm.sh (the login storm), RUNS rounds.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

FULL=${FULL:-0}
RUNS=${RUNS:-3}
PEERS=${PEERS:-"postern postern-before postern-nocache postfix nginx nginx-fastauth haraka sink sink-starttls"}
WORKLOADS=${WORKLOADS:-"W1 W2 W2x W3 W4 W5"}
SHAPES=${SHAPES:-"waiting pipelining"}
BEFORE_REV=${BEFORE_REV:-main}
if [ "$FULL" = 1 ]; then
  preset=full
  W1="--concurrency 50 --connections 500 --messages-per-conn 10 --size 4096"
  W2="--concurrency 50 --connections 1000 --messages-per-conn 1 --size 4096"
  W2x="$W2 --tls-groups x25519"
  W3="--concurrency 1 --connections 1 --messages-per-conn 5 --size 52428800"
  W4_SESSIONS=5000 W4_HOLD=10s
  W5_USERS=500 W5_CONC=50
  MAX_SECONDS=${MAX_SECONDS:-3600}
  CAP=120s
else
  preset=small
  W1="--concurrency 20 --connections 60 --messages-per-conn 10 --size 4096"
  W2="--concurrency 20 --connections 200 --messages-per-conn 1 --size 4096"
  W2x="$W2 --tls-groups x25519"
  W3="--concurrency 1 --connections 1 --messages-per-conn 5 --size 8388608"
  W4_SESSIONS=500 W4_HOLD=5s
  W5_USERS=200 W5_CONC=50
  MAX_SECONDS=${MAX_SECONDS:-900}
  CAP=60s
fi

ulimit -n 65536 2>/dev/null || true
if [ "$(ulimit -n)" -lt $((W4_SESSIONS * 2 + 200)) ]; then
  log "ulimit -n is $(ulimit -n): too low for $W4_SESSIONS idle sessions (client and server side)"; exit 1
fi

[ "${SKIP_INSTALL:-0}" = 1 ] || "$here/install.sh"
"$here/setup.sh"
case " $PEERS " in *" postern-before "*)
  # the same peer as postern, from the revision before the change under test
  before_rev=$(cd "$repo" && git rev-parse --short "$BEFORE_REV")
  log "building postern-before from $BEFORE_REV ($before_rev)"
  rm -rf "$OUT/before-src" && mkdir -p "$OUT/before-src"
  (cd "$repo" && git archive "$before_rev" | tar -x -C "$OUT/before-src")
  (cd "$OUT/before-src" && go build -o "$BIN/postern-before" ./cmd/postern) ;;
esac
uptime_before=$(uptime)
"$here/stop.sh" 2>/dev/null || true
trap '"$here/stop.sh"' EXIT

results=$OUT/results.jsonl
: >"$results"
skipped=()

"$here/start-sink.sh"
started=()
for p in $PEERS; do
  [ "$p" = sink ] && { started+=(sink); continue; }
  script=$here/start-$p.sh
  case $p in
    postern-nocache|postern-before) script="$here/start-postern.sh $p" ;;
    nginx-fastauth) script="$here/start-nginx.sh $p" ;;
    sink-starttls) script="$here/start-sink.sh $p" ;;
  esac
  if $script; then started+=("$p"); else log "peer $p did not start: left out"; skipped+=("$p (did not start)"); fi
done
PEERS="${started[*]}"

addr_of() {
  case $1 in
    postern) echo "127.0.0.1:$POSTERN_PORT" ;; postern-nocache) echo "127.0.0.1:$POSTERN_NOCACHE_PORT" ;; postfix) echo "127.0.0.1:$POSTFIX_PORT" ;;
    postern-before) echo "127.0.0.1:$POSTERN_BEFORE_PORT" ;;
    nginx) echo "127.0.0.1:$NGINX_PORT" ;; nginx-fastauth) echo "127.0.0.1:$NGINX_FAST_PORT" ;; haraka) echo "127.0.0.1:$HARAKA_PORT" ;;
    sink) echo "127.0.0.1:$SINK_PORT" ;; sink-starttls) echo "127.0.0.1:$SINK_TLS_PORT" ;;
  esac
}

# measure PEER WORKLOAD ARGS...: one run of the generator, its JSON line appended to $results.
measure() {
  local peer=$1 wl=$2; shift 2
  if [ "$SECONDS" -ge "$MAX_SECONDS" ]; then
    skipped+=("$wl $peer (total-time cap ${MAX_SECONDS}s)"); return 0
  fi
  local mode=starttls
  [ "$peer" = sink ] && mode=plain
  local line
  line=$(timeout 900 "$BIN/postern-bench" --addr "$(addr_of "$peer")" --mode "$mode" --insecure --server-name bench.test \
    --user "$BENCH_USER" --password "$BENCH_PASSWORD" --from "$BENCH_USER" --to rcpt@example.net \
    --duration "$CAP" --timeout 60s --label "$peer" --workload "$wl" --cpu-pids "$(peer_pids "$peer")" --json "$@") || { log "$wl $peer: generator failed"; return 0; }
  echo "$line" >>"$results"
  log "$wl $peer$(echo " $*" | sed -n -E 's/.* --shape ([^ ]+).*/ (\1)/p'): $(echo "$line" | sed -E 's/.*"messages_per_s":([0-9]+)[^,]*,.*"mib_per_s":([0-9]+)[^,]*,.*"msg_p99_ms":([0-9]+)[^,]*,.*"errors":([0-9]+).*/\1 msg\/s, \2 MiB\/s, p99 \3 ms, errors \4/'), CPU $(echo "$line" | sed -n -E 's/.*"cpu_ms_per_msg":([0-9.]+).*/\1/p') ms/msg, key exchange $(echo "$line" | sed -n -E 's/.*"tls_group":"([^"]*)".*/\1/p')"
  # Postfix answers once the message is queued: let it hand everything to the
  # sink before the next peer is measured (not counted in its time).
  if [ "$peer" = postfix ]; then
    local i
    for ((i = 0; i < 600; i++)); do [ "$(postfix_queue_len)" = 0 ] && break; sleep 0.2; done
  fi
}

restart_postern() {
  stop_pid "${1:-postern}"
  "$here/start-postern.sh" "${1:-postern}"
}

log "preset $preset, runs $RUNS, peers: $PEERS"
for p in $PEERS; do # warm-up: caches, JIT, first upstream connections
  measure "$p" warmup --concurrency 5 --connections 10 --messages-per-conn 2 --size 4096 >/dev/null
done

for wl in $WORKLOADS; do
  for ((r = 1; r <= RUNS; r++)); do
    case $wl in
      W1|W2|W2x)
        for shape in $SHAPES; do
          # shellcheck disable=SC2086
          for p in $PEERS; do measure "$p" "$wl" ${!wl} --shape "$shape"; done
        done ;;
      W3)
        for p in $PEERS; do
          [ "$p" = postern-nocache ] && continue # same data path as postern
          if [ "$p" = postern ] || [ "$p" = postern-before ]; then
            restart_postern "$p" # a fresh process, so that VmHWM is this workload's peak
            # shellcheck disable=SC2086
            measure "$p" W3 $W3 --rss-pid "$(pid_of "$p")"
          else
            # shellcheck disable=SC2086
            measure "$p" W3 $W3
          fi
        done ;;
      W4)
        for p in postern postern-before; do
          case " $PEERS " in *" $p "*) ;; *) continue ;; esac
          restart_postern "$p"
          measure "$p" W4 --idle "$W4_SESSIONS" --hold "$W4_HOLD" --concurrency 50 --size 4096 --rss-pid "$(pid_of "$p")"
        done ;;
      W5)
        if [ "$SECONDS" -ge "$MAX_SECONDS" ]; then skipped+=("W5 round $r (total-time cap ${MAX_SECONDS}s)"); continue; fi
        SKIP_SETUP=1 STORM_USERS=$W5_USERS STORM_CONC=$W5_CONC ROUNDS=1 "$here/storm.sh" >"$OUT/storm-$r.out" || log "W5 round $r failed"
        grep '^{' "$OUT/storm-$r.out" >>"$results" || true
        grep -v '^{' "$OUT/storm-$r.out" >&2 || true ;;
    esac
  done
done

{
  echo "Preset **$preset** (\`$( [ "$FULL" = 1 ] && echo "FULL=1 " )bench/run.sh\`), $RUNS runs per measurement, peers interleaved within each run; total $SECONDS s."
  echo
  echo "Machine load (\`uptime\`, 2 CPUs shared with other engineers' builds and tests): before \`${uptime_before##*load average: }\`, after \`$(uptime | sed 's/.*load average: //')\` (1, 5, 15 min)."
  echo
  echo "Versions: postern $(cd "$repo" && git describe --always --dirty 2>/dev/null || echo '?')${before_rev:+, postern-before $before_rev ($BEFORE_REV)}; $(postconf -d mail_version 2>/dev/null | sed 's/mail_version = /Postfix /'); Dovecot $(dovecot --version 2>/dev/null | cut -d' ' -f1); $(nginx -v 2>&1 | sed 's#nginx version: nginx/#nginx #'); Haraka $(node -p "require('$OUT/haraka/node_modules/Haraka/package.json').version" 2>/dev/null); Node.js $(node --version 2>/dev/null)."
  echo
  echo "Set-up: every peer on loopback with the same ECDSA P-256 certificate and the same user; all forward to one sink (\`postern-bench sink\`, plain SMTP, discards). Clients: \`postern-bench\` in the client shapes \`$SHAPES\` (W1/W2/W2x, one table each; W3/W4 \`waiting\`, go-smtp's client: a write and a wait per command, the message with its final dot in one write; \`pipelining\`: MAIL, RCPT and DATA in one write), STARTTLS + AUTH PLAIN for the proxies, plain + AUTH for the sink (the ceiling); the client offers Go's default key exchange groups (X25519MLKEM768 first) except in W2x, where it offers only X25519 (\`--tls-groups x25519\`), and records the group each handshake negotiated (the key exchange column). Password checks: Postern, Postfix (via Dovecot passwd-file) and nginx (via the \`postern-bench authhttp\` helper) verify the same bcrypt cost-10 hash; Haraka's auth/flat_file compares a clear-text password. Postern runs with its defaults${POSTERN_ARGS:+ plus \`$POSTERN_ARGS\`} except the caps the benchmark turns off (\`start-postern.sh\`): \`--max-connections-per-ip 0\` (every client connection comes from 127.0.0.1: 50 at a time reach the default cap of 50, and some get 421 because a closed connection's slot is given back only when the server has closed its side, after the session's Logout, which can be after the client, holding the 221, has connected again; W4 holds thousands), \`--limit-messages '*' --limit-recipients '*'\` (the one benchmark user sends thousands of messages, over the default 200 an hour), \`--auth-max-failures 100000\` (AUTHs in flight count against the one address until they succeed: 50 concurrent bcrypt logins would get 421 as guessing), \`--max-message-size 104857600\` (W3's messages are 50 MiB, the default cap itself) and \`--control-socket none\`. nginx (both rows) runs with \`smtp_client_buffer 16k\` and \`ssl_conf_command NumTickets 0\`: its mail module never sets TCP_NODELAY, and with the defaults it waited for a 40 ms delayed ACK on every message (a 4 KiB message and its final dot relayed upstream in two sends) and every connection (the EHLO reply behind two TLS 1.3 session tickets); bench/NOTES.md has the evidence. Postern's credential cache (\`--auth-cache-ttl\`, 5 min) is on, and with a single benchmark user every AUTH after the first is a cache hit; **postern-nocache** is a second instance with \`--auth-cache-ttl 0\`, which pays bcrypt on every AUTH like the others (W1/W2/W2x only); **postern-before** is the same as postern built from \`$BEFORE_REV\` (before/after in one run). **nginx-fastauth** is a second nginx whose auth_http helper (\`postern-bench authhttp --fast\`) verifies a login's password with bcrypt once and then answers from memory: nginx at its best, the fair match for Postern's cache. **sink-starttls** is the sink behind STARTTLS with the same certificate (AUTH accepted without a check): the ceiling of a TLS-terminating proxy. Postfix answers 250 once the message is in its queue; it then relays to the sink before the next peer runs (its delivery to the sink is only partly inside its CPU sample). Haraka runs one worker per CPU (nodes=cpus), nginx worker_processes auto. CPU ms/msg: user+system time of the peer's process tree (Postfix: master and children + Dovecot; nginx: master, workers and its auth_http helper; Postern, Haraka, sinks: their process), from /proc before and after each measurement, divided by the messages accepted; the shared sink behind the proxies is not included."
  if [ ${#skipped[@]} -gt 0 ]; then
    echo
    echo "Left out: ${skipped[*]}."
  fi
} >"$OUT/preamble.md"

notes=()
[ -f "$here/NOTES.md" ] && notes=(--notes "$here/NOTES.md")
"$BIN/postern-bench" report --in "$results" --out "$here/RESULTS.md" --svg "$here/chart.svg" --preamble "$OUT/preamble.md" "${notes[@]}"
log "wrote $here/RESULTS.md and $here/chart.svg (raw: $results)"
