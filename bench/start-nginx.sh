#!/usr/bin/env bash
# nginx's mail proxy (Debian nginx + libnginx-mod-mail): STARTTLS required,
# AUTH checked by the auth_http helper (postern-bench authhttp, bcrypt against
# the same users file), then proxied to the sink with XCLIENT off.
# `start-nginx.sh nginx-fastauth`: a second instance whose auth_http helper
# answers from memory (bcrypt once, then a comparison: nginx's best case).
#
# Both run as an operator who measured would configure them (bench/NOTES.md,
# "Why nginx waited 44 ms"): nginx's mail module never sets TCP_NODELAY (no
# directive for it; strace shows no setsockopt), so two writes in a row on
# one socket wait for the peer's delayed ACK (40 ms). Two such pairs remain
# with the defaults and are configured away here:
# - smtp_client_buffer 16k: the client-to-upstream buffer (default one page,
#   4 KiB) took a 4 KiB message with its final dot (4,099 bytes) in two reads
#   and two sends upstream, 4,096 bytes and ".\r\n", the dot held by Nagle
#   until the sink's delayed ACK: 44 ms on every message. 16 KiB holds a
#   whole TLS record's plaintext, so a record is relayed in one send.
# - ssl_conf_command NumTickets 0: OpenSSL 3.0 writes TLS 1.3's two session
#   tickets as two writes right after the handshake, and the EHLO reply waits
#   behind them for the client's delayed ACK: 44 ms on every connection. The
#   benchmark's client never resumes a session (no --tls-resume), so the
#   tickets buy nothing here; an operator whose clients resume would weigh
#   this (one ticket still stalls: only 0 avoids it). NGINX_TLS_TICKETS sets
#   the count (e.g. 2, OpenSSL's default, to see the stall).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
name=${1:-nginx} helper=authhttp fast=()
if [ "$name" = nginx-fastauth ]; then
  NGINX_PORT=$NGINX_FAST_PORT AUTHHTTP_PORT=$AUTHHTTP_FAST_PORT helper=authhttp-fastauth fast=(--fast)
fi
port_free "$NGINX_PORT"; port_free "$AUTHHTTP_PORT"
N=$OUT/$name
mkdir -p "$N/logs"
mod=/usr/lib/nginx/modules/ngx_mail_module.so
[ -e "$mod" ] || { log "no $mod: run bench/install.sh"; exit 1; }
cat >"$N/nginx.conf" <<CONF
load_module $mod;
daemon off;
master_process on;
worker_processes auto;
worker_rlimit_nofile 20000;
pid $N/nginx.pid;
error_log $N/logs/error.log warn;
events { worker_connections 10000; }
mail {
  server_name bench.test;
  auth_http 127.0.0.1:$AUTHHTTP_PORT/auth;
  proxy_pass_error_message on;
  xclient off;
  smtp_client_buffer 16k;
  smtp_auth plain login;
  smtp_capabilities "SIZE 104857600" "8BITMIME" "PIPELINING" "ENHANCEDSTATUSCODES";
  ssl_certificate $CERT;
  ssl_certificate_key $KEY;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:MAIL:10m;
  ssl_conf_command NumTickets ${NGINX_TLS_TICKETS:-0};
  server {
    listen 127.0.0.1:$NGINX_PORT;
    protocol smtp;
    starttls only;
  }
}
CONF
start_bg "$helper" "$BIN/postern-bench" authhttp --listen "127.0.0.1:$AUTHHTTP_PORT" --users "$USERS" --upstream "127.0.0.1:$SINK_PORT" "${fast[@]}"
wait_port "$AUTHHTTP_PORT"
nginx -t -q -e "$N/logs/error.log" -p "$N" -c "$N/nginx.conf"
start_bg "$name" nginx -e "$N/logs/error.log" -p "$N" -c "$N/nginx.conf"
wait_port "$NGINX_PORT"
log "$name mail proxy on 127.0.0.1:$NGINX_PORT (master pid $(pid_of "$name")), auth_http on :$AUTHHTTP_PORT (pid $(pid_of "$helper"))"
