#!/usr/bin/env bash
# The compose stack and the checks, in a network namespace of its own
# (sandbox.sh starts this with `unshare --net`): loopback, with one more
# address that plays the Docker host's, which clients come from (the
# published ports are DNAT rules, which traffic to 127.0.0.1 does not
# reliably take). podman's bridge, the containers' network namespaces, the
# portmap and firewall rules and dnsname's dnsmasq are all made here, and go
# with the namespace.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

hostip=198.51.100.1 # TEST-NET-2: nothing outside this namespace has it
ip link set lo up
ip addr add "$hostip/32" dev lo

# The published ports: docker-compose.yml's defaults, free in a namespace
# of our own.
POSTERN_SUBMISSION_PORT=587 POSTERN_SUBMISSIONS_PORT=465 POSTERN_ALT_SUBMISSION_PORT=2525 POSTERN_ACME_HTTP_PORT=80
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("",0)); print(s.getsockname()[1])'; }

# purge removes the project's containers and volumes from podman's storage
# in the cache: those a killed run left (podman finds them stopped: its
# runroot is new), and at the end the ones compose down may leave (a
# container in a restart loop keeps its volumes).
purge() {
  local id
  for id in $(pm ps -aq --filter "label=com.docker.compose.project=$project"); do pm rm -f -t 2 "$id" >/dev/null 2>&1; done
  for id in $(pm volume ls -q --filter "label=com.docker.compose.project=$project"); do pm volume rm -f "$id" >/dev/null 2>&1; done
  return 0
}
pebble_pid="" cts_pid=""
cleanup() {
  local rc=$?
  set +e
  for p in $pebble_pid $cts_pid; do
    kill "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  if [ -n "${KEEP:-}" ]; then
    say "KEEP set: a shell in the sandbox (DOCKER_HOST=$DOCKER_HOST, cd $cache/src/deploy); exit it to end the run"
    bash -i </dev/tty >/dev/tty 2>&1
  fi
  purge
  stop_engine
  say "done (exit $rc)"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_engine stack
say "podman service PID $service_pid on $sock (the sandbox's network)"
purge
cd "$cache/src/deploy"

# The walk-through's steps 1 and 2: a user (hashed by the image itself) and a
# self-signed certificate, readable by uid 65532 only through the group.
export POSTERN_HOSTNAME=dockertest.postern.invalid
hash=$(printf 'secret\n' | compose run --rm -T --no-deps postern hash-password 2>"$cache/logs/hash.log") ||
  { cat "$cache/logs/hash.log" >&2; explain "$cache/logs/hash.log"; fail "docker-compose run postern hash-password"; }
echo "alice@example.org:$hash" >config/users
# carol joins later (the HUP test); hashed now: `docker-compose run` next to
# running services asks podman for links, which it does not support.
carol_hash=$(printf 'carol pw\n' | compose run --rm -T --no-deps postern hash-password 2>>"$cache/logs/hash.log") ||
  { cat "$cache/logs/hash.log" >&2; fail "docker-compose run postern hash-password (carol)"; }
chmod 0640 config/users && chgrp 65532 config/users
mkdir -p config/tls
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=$POSTERN_HOSTNAME" -addext "subjectAltName=DNS:$POSTERN_HOSTNAME,DNS:localhost" \
  -keyout config/tls/privkey.pem -out config/tls/fullchain.pem 2>/dev/null
chgrp 65532 config/tls/privkey.pem && chmod 0640 config/tls/privkey.pem

# ctr SERVICE: the container's ID (`docker-compose ps -q` takes seconds).
ctr() {
  pm ps -aq --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=$1"
}
# podman runs health checks from systemd timers, and this machine has no
# systemd: run Postfix's check while compose waits for service_healthy.
# Only once it would pass: podman counts failures in the start period, and
# compose gives up on an unhealthy container.
healthy_loop() {
  for _ in $(seq 120); do
    id=$(ctr postfix)
    if [ -n "$id" ] && pm exec "$id" postfix status >/dev/null 2>&1 &&
      pm healthcheck run "$id" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
}
say "docker-compose up -d"
healthy_loop & hl_pid=$!
# Bounded: compose waits for a health condition that may never come.
if ! timeout 300 docker-compose -p "$project" -f docker-compose.yml -f docker-compose.podman.yml \
    up -d >"$cache/logs/up.log" 2>&1; then
  kill "$hl_pid" 2>/dev/null; cat "$cache/logs/up.log" >&2; explain "$cache/logs/up.log"
  compose logs --tail 30 >&2 || true
  fail "docker-compose up -d"
fi
wait "$hl_pid" || true
pn=$(ctr postern); pf=$(ctr postfix)
[ -n "$pn" ] && [ -n "$pf" ] || fail "compose ps: no postern or postfix container"

# Postern is up when its submission port answers with a banner.
up=""
for _ in $(seq 30); do
  if swaks --server "$hostip:$POSTERN_SUBMISSION_PORT" --quit-after CONNECT >/dev/null 2>&1; then up=1; break; fi
  sleep 1
done
[ -n "$up" ] || { pm logs --tail 20 "$pn" >&2; fail "postern does not answer on $hostip:$POSTERN_SUBMISSION_PORT (published 587)"; }
say "stack up: postern $POSTERN_SUBMISSION_PORT/$POSTERN_SUBMISSIONS_PORT/$POSTERN_ALT_SUBMISSION_PORT on $hostip"

# ---------------------------------------------------------------------------
# Scope 2: mail through the published ports.
mailbox() { pm exec "$pf" cat /var/mail/demo 2>/dev/null || true; }
# wait_mail MARKER N: waits (30 s at most) for N copies of MARKER in the box.
wait_mail() {
  local n=0
  for _ in $(seq 30); do
    n=$(mailbox | grep -c "^Subject: $1\$" || true)
    [ "$n" -ge "$2" ] && break
    sleep 1
  done
  echo "$n"
}
send_swaks() { # port tls-option user password from marker
  swaks --server "$hostip:$1" "$2" --ehlo client-ehlo.dockertest.invalid \
    --auth PLAIN --auth-user "$3" --auth-password "$4" --from "$5" --to bob@example.net \
    --header "Subject: $6" --body "dockertest $6" --timeout 60 2>&1
}
expect_delivered() { # what marker output
  local n
  n=$(wait_mail "$2" 1)
  [ "$n" = 1 ] || { echo "$3" >&2; pm logs --tail 20 "$pf" >&2; fail "$1: message $2 is in the Postfix mailbox $n times, want once"; }
}

m1="dt-starttls-$$"
out=$(send_swaks "$POSTERN_SUBMISSION_PORT" --tls alice@example.org secret alice@example.org "$m1") ||
  { echo "$out" >&2; fail "swaks STARTTLS on 587 (published $POSTERN_SUBMISSION_PORT)"; }
expect_delivered "STARTTLS on 587" "$m1" "$out"
say "ok: STARTTLS on 587 delivered"

# The message as stored: Postern's anonymous Received line, no trace of the
# client (its address as Postern saw it, the host's addresses, the EHLO name).
msg=$(mailbox | awk -v s="Subject: $m1" '/^From /{buf=""} {buf=buf $0 "\n"} $0==s{found=1} found&&/^$/{print buf; exit}')
grep -Eq '^Received: from \[127\.0\.0\.1\] \(localhost \[127\.0\.0\.1\]\)' <<<"$msg" ||
  { echo "$msg" >&2; fail "no anonymous Received line from Postern"; }
grep -q '(Postern)' <<<"$msg" || { echo "$msg" >&2; fail "the Received line does not name Postern"; }
# The client's address as Postern logged it (client=, peer=).
seen=$(pm logs "$pn" 2>&1 | grep -oE '(client|peer)=[0-9]+(\.[0-9]+){3}' | cut -d= -f2 | sort -u | tr '\n' ' ' || true)
[ -n "$seen" ] || fail "postern logged no client address (client=/peer=): the check below would prove nothing"
gw=$(pm network inspect "${project}_mail" --format '{{range .Subnets}}{{.Gateway}}{{end}}' 2>/dev/null || true)
for addr in $seen $hostip $gw client-ehlo.dockertest.invalid; do
  case $addr in 127.0.0.1|"") continue ;; esac
  if grep -qwF "$addr" <<<"$msg"; then
    echo "$msg" >&2; fail "the delivered message carries the client's $addr"
  fi
done
say "ok: anonymous Received, none of [$seen$hostip $gw client-ehlo] in the message"

m2="dt-tls-$$"
out=$(printf 'From: alice@example.org\r\nTo: bob@example.net\r\nSubject: %s\r\n\r\ndockertest\r\n' "$m2" |
  msmtp --host="$hostip" --port="$POSTERN_SUBMISSIONS_PORT" --tls=on --tls-starttls=off --tls-certcheck=off \
    --auth=plain --user=alice@example.org --passwordeval='echo secret' --from=alice@example.org \
    --domain=client-ehlo.dockertest.invalid --timeout=60 bob@example.net 2>&1) ||
  { echo "$out" >&2; fail "msmtp implicit TLS on 465 (published $POSTERN_SUBMISSIONS_PORT)"; }
expect_delivered "implicit TLS on 465" "$m2" "$out"
say "ok: implicit TLS on 465 delivered (msmtp)"

m3="dt-2525-$$"
out=$(send_swaks "$POSTERN_ALT_SUBMISSION_PORT" --tls alice@example.org secret alice@example.org "$m3") ||
  { echo "$out" >&2; fail "swaks STARTTLS on 2525"; }
expect_delivered "STARTTLS on 2525" "$m3" "$out"
say "ok: STARTTLS on 2525 delivered"

out=$(send_swaks "$POSTERN_SUBMISSION_PORT" --tls alice@example.org wrong alice@example.org dt-wrong-$$) &&
  { echo "$out" >&2; fail "a wrong password was accepted"; }
grep -q '^<~\* 535' <<<"$out" || { echo "$out" >&2; fail "a wrong password: want 535"; }
say "ok: wrong password 535"

out=$(send_swaks "$POSTERN_SUBMISSION_PORT" --tls alice@example.org secret bob@example.org dt-spoof-$$) &&
  { echo "$out" >&2; fail "alice sent as bob@example.org"; }
grep -q '^<~\* 553' <<<"$out" || { echo "$out" >&2; fail "a spoofed sender: want 553"; }
say "ok: spoofed sender 553"

# ---------------------------------------------------------------------------
# Scope 3: the container facts a user relies on.
pid=$(pm inspect --format '{{.State.Pid}}' "$pn")
status=$(cat "/proc/$pid/status")
grep -Eq '^Uid:\s+65532\s+65532\s+65532\s+65532$' <<<"$status" ||
  fail "postern does not run as uid 65532: $(grep ^Uid <<<"$status")"
grep -Eq '^Gid:\s+65532\s' <<<"$status" || fail "postern does not run as gid 65532: $(grep ^Gid <<<"$status")"
for cap in CapInh CapPrm CapEff CapBnd CapAmb; do
  grep -Eq "^$cap:\s+0+$" <<<"$status" || fail "postern has capabilities: $(grep "^$cap" <<<"$status")"
done
grep -Eq '^NoNewPrivs:\s+1$' <<<"$status" || fail "postern runs without no-new-privileges"
[ "$(pm inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$pn")" = true ] || fail "postern's root is not read-only"
# ... and really read-only: the root's mount in its namespace.
grep -Eq '^\S+ / \S+ ro[ ,]' "/proc/$pid/mounts" || fail "postern's / is not mounted read-only: $(grep ' / ' "/proc/$pid/mounts")"
say "ok: uid/gid 65532, no capabilities, no-new-privileges, read-only root"

out=$(pm healthcheck run "$pn" 2>&1) || fail "podman healthcheck run postern: $out"
say "ok: healthcheck passes"

readyz() { pm exec "$pn" /postern healthcheck --url http://127.0.0.1:9090/readyz 2>&1; }
out=$(readyz) || fail "/readyz with Postfix up: $out"
compose stop -t 10 postfix >"$cache/logs/stop-postfix.log" 2>&1 || fail "docker-compose stop postfix"
ok=""
for _ in $(seq 20); do
  if out=$(readyz); then sleep 1; continue; fi
  grep -q 503 <<<"$out" && ok=1; break
done
[ -n "$ok" ] || fail "/readyz with Postfix stopped: want 503, got: $out"
say "ok: /readyz 503 with Postfix stopped"
healthy_loop & hl_pid=$!
compose start postfix >"$cache/logs/start-postfix.log" 2>&1 || fail "docker-compose start postfix"
wait "$hl_pid" || true
for _ in $(seq 30); do out=$(readyz) && break; sleep 1; done
readyz >/dev/null || fail "/readyz after Postfix came back: $out"
say "ok: /readyz back to 200"

# HUP reloads a changed users file (a new login works only after the HUP).
carol() { send_swaks "$POSTERN_SUBMISSION_PORT" --tls carol@example.org "carol pw" carol@example.org "$1"; }
echo "carol@example.org:$carol_hash" >>config/users
out=$(carol "dt-carol-early-$$") && { echo "$out" >&2; fail "carol logged in before the reload"; }
grep -q '^<~\* 535' <<<"$out" || { echo "$out" >&2; fail "carol before the reload: want 535"; }
compose kill -s HUP postern >"$cache/logs/hup.log" 2>&1 || { cat "$cache/logs/hup.log" >&2; fail "docker-compose kill -s HUP postern"; }
m4="dt-carol-$$"
for _ in $(seq 10); do out=$(carol "$m4") && break; sleep 1; done
grep -q '^<~  250 .*queued' <<<"$out" || { echo "$out" >&2; fail "carol after docker-compose kill -s HUP: not accepted"; }
expect_delivered "after HUP" "$m4" "$out"
say "ok: kill -s HUP reloaded the users file"

# Port 25 is not published, and the host cannot relay through Postfix.
[ -z "$(pm port "$pf")" ] || fail "postfix publishes ports: $(pm port "$pf")"
for addr in 127.0.0.1 $hostip; do
  out=$(swaks --server "$addr:25" --quit-after CONNECT --timeout 5 2>&1 || true)
  if grep -q "^<-  220 $POSTERN_HOSTNAME ESMTP" <<<"$out"; then
    fail "the compose Postfix answers on the host's $addr:25"
  fi
done
pfip=$(pm inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$pf")
out=$(swaks --server "$pfip:25" --from someone@example.com --to victim@example.net --timeout 10 2>&1) &&
  { echo "$out" >&2; fail "the host relays through Postfix at $pfip:25 (the bridge's gateway is in mynetworks)"; }
grep -Eq '^<\*\* (554|454|5[0-9][0-9]) ' <<<"$out" || grep -q 'Connection refused\|timed out' <<<"$out" ||
  { echo "$out" >&2; fail "relay attempt from the host to $pfip:25: want a refusal"; }
say "ok: port 25 not published, no relay from the host ($pfip:25 refused it)"

# docker-compose stop during a 20 MB message: delivered exactly once after
# a 250, or a 4xx; never a 250 without the message.
m5="dt-big-$$"
python3 "$repo/deploy/dockertest/bigsend.py" "$hostip" "$POSTERN_SUBMISSION_PORT" alice@example.org secret \
  "$m5" 20 "$rundir/halfway" "$rundir/go" >"$cache/logs/bigsend.log" 2>&1 & bs_pid=$!
for _ in $(seq 60); do [ -e "$rundir/halfway" ] && break; sleep 0.5; done
[ -e "$rundir/halfway" ] || { kill "$bs_pid"; cat "$cache/logs/bigsend.log" >&2; fail "the 20 MB message never got halfway"; }
compose stop postern >"$cache/logs/stop-postern.log" 2>&1 & stop_pid=$!
sleep 3   # SIGTERM delivered: postern is draining
# Postern must still be waiting for the message (stop_grace_period 45 s,
# shutdown timeout 30 s): were it gone, the assertion below would still
# hold but this would not test a drain.
kill -0 "$stop_pid" 2>/dev/null || fail "docker-compose stop postern returned while a message was in flight"
touch "$rundir/go"
wait "$bs_pid" || true
wait "$stop_pid" || { cat "$cache/logs/stop-postern.log" >&2; fail "docker-compose stop postern"; }
reply=$(grep '^REPLY' "$cache/logs/bigsend.log" || true)
[ "$(pm inspect --format '{{.State.Status}}' "$pn")" = exited ] || fail "postern still runs after docker-compose stop"
case $reply in
  "REPLY 250"*)
    n=$(wait_mail "$m5" 1)
    [ "$n" = 1 ] || fail "stop during 20 MB: client got 250 but the message is in the mailbox $n times" ;;
  "REPLY 4"*)
    say "(the stop answered 4xx: $reply)" ;;
  *) cat "$cache/logs/bigsend.log" >&2; fail "stop during 20 MB: want 250 (delivered once) or 4xx, got: ${reply:-nothing}" ;;
esac
say "ok: docker-compose stop during a 20 MB message: $reply"

# ---------------------------------------------------------------------------
# Scope 4: docker-compose.acme.yml against Pebble on the "host". Pebble asks
# pebble-challtestsrv for the name (every name: this host) and validates on
# the published port 80; Postern reaches Pebble through the network's
# gateway. The test's own override only points Postern at Pebble and makes
# it trust Pebble's HTTPS certificate (SSL_CERT_FILE).
pdir=$cache/pebble; rm -rf "$pdir"; mkdir -p "$pdir"
gw=$(pm network inspect "${project}_mail" --format '{{range .Subnets}}{{.Gateway}}{{end}}')
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=pebble \
  -addext "subjectAltName=IP:$gw,IP:$hostip,IP:127.0.0.1" -keyout "$pdir/key.pem" -out "$pdir/cert.pem" 2>/dev/null
dnsport=$(free_port); pebport=$(free_port); mgmtport=$(free_port)
pebble-challtestsrv -dns01 "127.0.0.1:$dnsport" -http01 "" -https01 "" -tlsalpn01 "" \
  -management "127.0.0.1:$(free_port)" -defaultIPv4 "$hostip" -defaultIPv6 "" >"$cache/logs/challtestsrv.log" 2>&1 &
cts_pid=$!
cat >"$pdir/pebble.json" <<JSON
{"pebble": {"listenAddress": "0.0.0.0:$pebport", "managementListenAddress": "127.0.0.1:$mgmtport",
  "certificate": "$pdir/cert.pem", "privateKey": "$pdir/key.pem",
  "httpPort": $POSTERN_ACME_HTTP_PORT, "tlsPort": $(free_port), "ocspResponderURL": "",
  "externalAccountBindingRequired": false}}
JSON
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 pebble -config "$pdir/pebble.json" -dnsserver "127.0.0.1:$dnsport" \
  >"$cache/logs/pebble.log" 2>&1 &
pebble_pid=$!
sleep 1
kill -0 "$cts_pid" 2>/dev/null || { cat "$cache/logs/challtestsrv.log" >&2; fail "pebble-challtestsrv did not start"; }
kill -0 "$pebble_pid" 2>/dev/null || { cat "$cache/logs/pebble.log" >&2; fail "pebble did not start"; }
cp "$pdir/cert.pem" config/pebble-https.pem && chmod 0644 config/pebble-https.pem
cat >docker-compose.pebble.yml <<YML
services:
  postern:
    environment:
      POSTERN_ACME_DIRECTORY: https://$gw:$pebport/dir
      SSL_CERT_FILE: /etc/postern/pebble-https.pem
YML
export ACME_EMAIL=postmaster@example.org
acme() { docker-compose -p "$project" -f docker-compose.yml -f docker-compose.podman.yml \
  -f docker-compose.acme.yml -f docker-compose.pebble.yml "$@"; }
acme up -d --no-deps postern >"$cache/logs/up-acme.log" 2>&1 ||
  { cat "$cache/logs/up-acme.log" >&2; fail "docker-compose up with docker-compose.acme.yml"; }
pn=$(ctr postern)
issuer=""
for _ in $(seq 60); do
  issuer=$(openssl s_client -starttls smtp -connect "$hostip:$POSTERN_SUBMISSION_PORT" -servername "$POSTERN_HOSTNAME" \
    </dev/null 2>/dev/null | sed -n 's/^issuer=//p' || true)
  grep -qi pebble <<<"$issuer" && break
  sleep 1
done
grep -qi pebble <<<"$issuer" ||
  { pm logs --tail 20 "$pn" >&2; tail -n 20 "$cache/logs/pebble.log" >&2; fail "no certificate from Pebble on 587 (issuer: ${issuer:-none})"; }
m6="dt-acme-$$"
out=$(send_swaks "$POSTERN_SUBMISSION_PORT" --tls alice@example.org secret alice@example.org "$m6") ||
  { echo "$out" >&2; fail "swaks with the ACME certificate"; }
expect_delivered "with the ACME certificate" "$m6" "$out"
kill "$pebble_pid" "$cts_pid" 2>/dev/null; wait "$pebble_pid" "$cts_pid" 2>/dev/null || true
pebble_pid="" cts_pid=""
say "ok: docker-compose.acme.yml: a certificate from Pebble ($issuer), mail delivered"

