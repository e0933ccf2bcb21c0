#!/usr/bin/env bash
# Haraka (npm): plugins tls, auth/flat_file, queue/smtp_forward to the sink.
# One worker per CPU (nodes=cpus) so that it may use the cores the others use.
# auth/flat_file keeps the password in clear in its ini file: Haraka does not
# pay for a password hash (the others run bcrypt per AUTH).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
port_free "$HARAKA_PORT"
H=$OUT/haraka-instance
bin=$OUT/haraka/node_modules/.bin/haraka
[ -x "$bin" ] || { log "no Haraka: run bench/install.sh"; exit 1; }
mkdir -p "$H/config"
c=$H/config
cp "$CERT" "$c/tls_cert.pem"; cp "$KEY" "$c/tls_key.pem"
printf 'tls\nauth/flat_file\nqueue/smtp_forward\n' >"$c/plugins"
printf 'listen=127.0.0.1:%s\nnodes=%s\ninactivity_timeout=300\n' "$HARAKA_PORT" "${HARAKA_NODES:-cpus}" >"$c/smtp.ini"
printf 'key=tls_key.pem\ncert=tls_cert.pem\nminVersion=TLSv1.2\n' >"$c/tls.ini"
sed 's/^bytes=.*/bytes=104857600/' "$OUT/haraka/node_modules/Haraka/config/connection.ini" >"$c/connection.ini"
printf '[main]\nlevel=warn\ntimestamps=true\nformat=default\n' >"$c/log.ini"
printf 'bench.test\n' >"$c/me"
printf '[core]\nmethods=PLAIN,LOGIN\n[users]\n%s=%s\n' "$BENCH_USER" "$BENCH_PASSWORD" >"$c/auth_flat_file.ini"
printf 'host=127.0.0.1\nport=%s\nenable_outbound=true\n' "$SINK_PORT" >"$c/smtp_forward.ini"
start_bg haraka "$bin" -c "$H"
wait_port "$HARAKA_PORT" 60
log "haraka on 127.0.0.1:$HARAKA_PORT (pid $(pid_of haraka))"
