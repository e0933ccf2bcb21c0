# Common settings of the benchmark scripts; sourced, not run.
# Everything lives under $OUT (bench/out, git-ignored); every process started
# is tracked by its PID file in $RUN and stopped by that PID only.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
OUT=${BENCH_OUT:-$here/out}
RUN=$OUT/run
BIN=$OUT/bin
mkdir -p "$OUT" "$RUN" "$BIN"

# Ports (loopback only). BENCH_PORT_BASE moves them all.
base=${BENCH_PORT_BASE:-24000}
SINK_PORT=$((base + 25))
POSTERN_PORT=$((base + 587))        # STARTTLS
POSTERN_TLS_PORT=$((base + 465))    # implicit TLS
POSTERN_NOCACHE_PORT=$((base + 1587)) # second instance, credential cache off
POSTFIX_PORT=$((base + 588))
NGINX_PORT=$((base + 589))
HARAKA_PORT=$((base + 590))
AUTHHTTP_PORT=$((base + 180))
SINK_TLS_PORT=$((base + 26))          # sink-starttls: the sink behind STARTTLS (W3's fair ceiling)
NGINX_FAST_PORT=$((base + 1589))      # nginx-fastauth: its auth_http answers from memory
AUTHHTTP_FAST_PORT=$((base + 181))
POSTERN_BEFORE_PORT=$((base + 4587))  # postern-before: built from BEFORE_REV (default main)
STORM_PORT=$((base + 2587))           # W5's fresh Postern (storm.sh)

BENCH_USER=bench@example.test
BENCH_PASSWORD=${BENCH_PASSWORD:-bench-pw-2718}
CERT=$OUT/cert.pem
KEY=$OUT/key.pem
USERS=$OUT/users          # login:{BLF-CRYPT}$2y$10$... for Postern, Dovecot and the auth_http helper

# peer_pids PEER: the root PIDs of PEER's process tree, for --cpu-pids
# (Postfix: its master and Dovecot; nginx: master and its auth_http helper).
peer_pids() {
  local p=$1
  case $p in
    postfix) echo "$(tr -d ' ' <"$OUT/postfix/queue/pid/master.pid" 2>/dev/null),$(pid_of dovecot)" ;;
    nginx) echo "$(pid_of nginx),$(pid_of authhttp)" ;;
    nginx-fastauth) echo "$(pid_of nginx-fastauth),$(pid_of authhttp-fastauth)" ;;
    *) pid_of "$p" ;;
  esac
}

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# wait_port PORT [SECONDS]: until something accepts on 127.0.0.1:PORT.
wait_port() {
  local port=$1 limit=${2:-30} i
  for ((i = 0; i < limit * 10; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  log "nothing listens on 127.0.0.1:$port after ${limit}s"
  return 1
}

# port_free PORT: fails when something already listens there.
port_free() {
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    log "port $1 is in use; set BENCH_PORT_BASE"
    return 1
  fi
}

# start_bg NAME CMD...: runs CMD in the background, PID in $RUN/NAME.pid, output in $RUN/NAME.log.
start_bg() {
  local name=$1; shift
  "$@" >"$RUN/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
}

pid_of() { cat "$RUN/$1.pid" 2>/dev/null; }

# postern_bench_flags BIN: the flags every benchmarked Postern gets, one a
# line, when BIN knows them (postern-before may be built from an older
# revision): no sending limits (the defaults, 200 messages/h and 1,000
# recipients/24 h per login, refuse the one benchmark user's messages with
# 451 within a run) and no control socket (the instances would share
# /run/postern/control.sock where that directory exists).
postern_bench_flags() {
  local help
  help=$("$1" serve --help 2>&1 || true)
  case $help in *--limit-messages*) printf '%s\n' --limit-messages '*' --limit-recipients '*' ;; esac
  case $help in *--control-socket*) printf '%s\n' --control-socket none ;; esac
}

# alive PID: the process exists and is not a zombie waiting for its reaper.
alive() {
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [ "${st%% *}" != Z ]
}

# stop_pid NAME: TERM the recorded PID, wait up to 10 s, then KILL it.
stop_pid() {
  local name=$1 pid i
  pid=$(pid_of "$name") || return 0
  [ -n "$pid" ] || return 0
  if alive "$pid"; then
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$RUN/$name.pid"
}

# stop_postfix: the private Postfix's master (its PID from the instance's own
# pid file), then the postfix-script that waited for it.
stop_postfix() {
  local mpid i
  mpid=$(tr -d ' ' <"$OUT/postfix/queue/pid/master.pid" 2>/dev/null) || true
  if [ -n "${mpid:-}" ] && alive "$mpid"; then
    kill "$mpid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do alive "$mpid" || break; sleep 0.1; done
  fi
  stop_pid postfix
}

# postfix_queue_len: messages still in the private instance's queue.
postfix_queue_len() {
  find "$OUT/postfix/queue/incoming" "$OUT/postfix/queue/active" "$OUT/postfix/queue/deferred" \
    "$OUT/postfix/queue/maildrop" -type f 2>/dev/null | wc -l
}
