#!/usr/bin/env bash
# Builds postern and postern-bench, and writes the material every peer shares:
# one ECDSA P-256 certificate and one user (same login and password everywhere).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

log "building postern and postern-bench into $BIN"
(cd "$repo" && go build -o "$BIN/postern" ./cmd/postern && go build -o "$BIN/postern-bench" ./cmd/postern-bench)

if [ ! -s "$CERT" ] || [ ! -s "$KEY" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj /CN=bench.test -addext subjectAltName=DNS:bench.test \
    -keyout "$KEY" -out "$CERT" 2>/dev/null
  chmod 644 "$KEY" "$CERT" # loopback-only throw-away key; the peers' unprivileged workers read it
fi
if [ ! -s "$USERS" ]; then
  hash=$(printf '%s\n' "$BENCH_PASSWORD" | "$BIN/postern" hash-password)
  printf '%s:%s\n' "$BENCH_USER" "$hash" >"$USERS"
  chmod 644 "$USERS"
fi
# the private instances run their workers as unprivileged users: let them in.
chmod o+x "$OUT" 2>/dev/null || true
d=$OUT; while [ "$d" != / ]; do chmod o+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done
log "certificate $CERT, users $USERS ($(cut -c1-40 "$USERS")...)"
