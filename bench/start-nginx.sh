#!/usr/bin/env bash
# nginx's mail proxy (Debian nginx + libnginx-mod-mail): STARTTLS required,
# AUTH checked by the auth_http helper (postern-bench authhttp, bcrypt against
# the same users file), then proxied to the sink with XCLIENT off.
# `start-nginx.sh nginx-fastauth`: a second instance whose auth_http helper
# answers from memory (bcrypt once, then a comparison: nginx's best case).
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
  smtp_auth plain login;
  smtp_capabilities "SIZE 104857600" "8BITMIME" "PIPELINING" "ENHANCEDSTATUSCODES";
  ssl_certificate $CERT;
  ssl_certificate_key $KEY;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:MAIL:10m;
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
