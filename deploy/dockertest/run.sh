#!/usr/bin/env bash
# `make docker-test`: builds deploy/Dockerfile and deploy/postfix/ for real,
# brings up deploy/docker-compose.yml and talks to it from the host with
# swaks, msmtp and python3 (bigsend.py), then again with
# docker-compose.acme.yml against Pebble (issue 11). A shell script, not a Go
# test: every step is a command a user types (docker-compose, swaks), and
# it runs once, after `go test`, outside its 20-minute budget and -race.
# No registry is reachable here, so
# every FROM resolves to an image this script builds locally:
#   debian:bookworm, debian:bookworm-slim  debootstrap --variant=minbase
#   golang:<go major.minor>-bookworm       that root plus the host's Go
#                                          (`go env GOROOT` copied in), the
#                                          host's GOPROXY and CA bundle
#   gcr.io/distroless/static-debian12:nonroot
#                                          a minimal root: CA certificates,
#                                          tzdata, passwd with nonroot=65532
# The engine is Debian's podman (`podman system service` gives the Docker
# API that docker-compose v1 talks to) with its own containers.conf
# (CONTAINERS_CONF: runc, rlimits this machine allows), its own storage and
# network config under the cache directory, so a second run is fast and
# /etc is left alone.
#
# Under CI=true a missing component is a failure; elsewhere a skip that says
# why. Any failed check exits non-zero with a message saying what failed.
#
# Environment: POSTERN_DOCKER_CACHE (default $XDG_CACHE_HOME/postern-docker),
# KEEP=1 leaves the stack running (for debugging; you stop it).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cache=${POSTERN_DOCKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/postern-docker}
rundir=/run/postern-docker-test     # podman's runroot and tmp_dir (state that a reboot clears)
sock=$rundir/podman.sock
project=posterndt
t0=$(date +%s)

say() { printf '== [%3ss] %s\n' "$(( $(date +%s) - t0 ))" "$*" >&2; }
fail() { printf 'docker-test: FAIL: %s\n' "$*" >&2; exit 1; }
# missing: a component is not there; a failure under CI=true, else a skip.
missing() {
  if [ "${CI:-}" = true ]; then fail "$* (run \`make deps\` as root)"; fi
  printf 'docker-test: SKIP: %s (run `make deps` as root; CI=true makes this a failure)\n' "$*" >&2
  exit 0
}

# ---------------------------------------------------------------------------
# Preflight.
[ "$(id -u)" -eq 0 ] || missing "needs root (rootful podman, debootstrap)"
for tool in podman runc debootstrap docker-compose swaks msmtp openssl python3 go tar; do
  command -v "$tool" >/dev/null || missing "$tool not installed"
done
# (Output in a variable first: grep -q closing the pipe early would fail
# the writer under pipefail.)
# Without a DNS plugin the CNI network gives no names: postern cannot
# resolve "postfix".
for plugin in bridge portmap host-local firewall; do
  [ -x "/usr/lib/cni/$plugin" ] || missing "CNI plugin /usr/lib/cni/$plugin (package containernetworking-plugins)"
done
command -v iptables >/dev/null || missing "iptables (published ports)"
[ -x /usr/lib/cni/dnsname ] || missing "podman's CNI network has no service names without /usr/lib/cni/dnsname (package golang-github-containernetworking-plugin-dnsname)"
out=$(swaks --support 2>&1 || true)
grep -q '^=== TLS supported' <<<"$out" || missing "swaks without TLS (package libnet-ssleay-perl)"
out=$(msmtp --version 2>&1 || true)
grep -Eq 'TLS/SSL library: (GnuTLS|OpenSSL)' <<<"$out" || missing "msmtp without a TLS library"
out=$(docker-compose version 2>&1 || true)
grep -q 'docker-compose version' <<<"$out" || missing "docker-compose does not run (its Python modules): $out"
command -v docker >/dev/null || missing "the docker CLI, which docker-compose run attaches with (package docker.io)"

# Known failures of podman on this kind of machine, turned into advice.
explain() {
  local log=$1
  if grep -q 'setrlimit RLIMIT_NOFILE: Operation not permitted' "$log"; then
    echo "podman's default rlimits exceed this machine's hard limit (ulimit -Hn = $(ulimit -Hn)): default_ulimits in $cache/containers.conf must be at most that" >&2
  fi
  if grep -q 'cgroups in hybrid mode not supported' "$log"; then
    echo "crun refuses this machine's hybrid cgroups: containers.conf needs [engine] runtime = \"runc\" (and runc installed)" >&2
  fi
  if grep -q 'remount /, flags' "$log"; then
    echo "podman's storage could not remount /: the root is not a mount point (a plain chroot?); run in a VM or container, or bind-mount the root onto itself before chroot" >&2
  fi
}
# run_logged LOG CMD...: runs CMD with its output in LOG (and on stderr);
# a failure is explained and fatal.
run_logged() {
  local log=$1; shift
  if ! "$@" >"$log" 2>&1; then
    tail -n 40 "$log" >&2; explain "$log"; fail "$* (full log: $log)"
  fi
}

mkdir -p "$cache"/logs
exec 9>"$cache/lock"
flock -n 9 || fail "another docker-test holds $cache/lock"

# ---------------------------------------------------------------------------
# The engine: our own containers.conf, storage and runroot.
nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=20000
[ "$nofile" -gt 20000 ] && nofile=20000
mkdir -p "$cache/cni"
cat >"$cache/containers.conf" <<CONF
# Written by deploy/dockertest/run.sh.
[containers]
# At most the hard limit (podman's default, 1048576, fails with
# "setrlimit RLIMIT_NOFILE: Operation not permitted"); nproc at most 32768.
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]
# What Docker (20.10+) does in every container's network namespace and the
# image relies on (uid 65532 binds 587): podman 4.3 does not.
default_sysctls = ["net.ipv4.ip_unprivileged_port_start=0"]
[engine]
# crun refuses this machine's hybrid cgroups.
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$rundir/libpod"
[network]
network_config_dir = "$cache/cni"
CONF
export CONTAINERS_CONF=$cache/containers.conf
pm() { podman --root "$cache/storage" --runroot "$rundir/runroot" "$@"; }

# purge removes what compose down may leave (a container in a restart
# loop keeps the network and volumes), or what a killed run left.
purge() {
  local id
  for id in $(pm ps -aq --filter "label=com.docker.compose.project=$project"); do pm rm -f "$id" >/dev/null 2>&1; done
  pm network rm -f "${project}_mail" >/dev/null 2>&1
  for id in $(pm volume ls -q --filter "label=com.docker.compose.project=$project"); do pm volume rm -f "$id" >/dev/null 2>&1; done
  return 0
}
# purge_cni removes the kernel-side network state of this project's
# containers once podman no longer knows them (its runroot under /run was
# lost: a killed run, a reboot, a chroot's /run): NAT and forward rules,
# network namespaces and host-local address reservations. Left behind, a
# stale DNAT rule for a published port hijacks that port on the host for
# every later program (seen: a Go test's listener on 127.0.0.1:44079 could
# not be reached), and the reservations use up the subnet. Called only
# when no container of the project exists, so everything tagged with the
# project's network name is stale. CNI tags its rules with the network
# name in a comment; the forward rules carry only the address.
purge_cni() {
  local rules line chain ip ns ips=""
  command -v iptables >/dev/null || return 0
  rules=$(iptables -t nat -S 2>/dev/null) || return 0
  while IFS= read -r line; do
    case "$line" in
      "-A POSTROUTING "*"name: \\\"${project}_"*|"-A CNI-HOSTPORT-DNAT "*"name: \\\"${project}_"*) ;;
      *) continue ;;
    esac
    chain=${line##* -j }
    ip=$(printf '%s\n' "$line" | sed -n 's|.* -s \([0-9.]*\)/32 .*|\1|p')
    [ -n "$ip" ] && ips="$ips $ip"
    eval "iptables -t nat ${line/#-A /-D }" 2>/dev/null
    case "$chain" in CNI-*) iptables -t nat -F "$chain" 2>/dev/null; iptables -t nat -X "$chain" 2>/dev/null ;; esac
  done <<<"$rules"
  for ip in $ips; do
    iptables -S CNI-FORWARD 2>/dev/null | grep -E -- "-[sd] $ip/32 " | while IFS= read -r line; do
      eval "iptables ${line/#-A /-D }" 2>/dev/null
    done
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
      if ip -n "$ns" -4 -o addr show 2>/dev/null | grep -q " $ip/"; then ip netns delete "$ns" 2>/dev/null; fi
    done
    rm -f "/var/lib/cni/networks/${project}_mail/$ip"
  done
  [ -z "$ips" ] || say "removed the network state of containers a killed run left:$ips"
  # The bridge of the project's network, once podman lost its config (a
  # chroot's cache): a podman bridge that holds the compose subnet and has
  # no port left makes the next `compose up` fail ("subnet ... is already
  # used on the host"). Only cni-podman* bridges with nothing attached.
  # Its DNS server too: the dnsname plugin starts one dnsmasq per network,
  # and here `compose down` leaves it running (seen after every run); one
  # left over keeps the gateway's port 53, so the next network's dnsmasq
  # cannot start and no container on it starts. Found by its configuration
  # path, which names the project's network.
  local pid
  for pid in $(pgrep -f -- "--conf-file=/run/containers/cni/dnsname/${project}_mail/dnsmasq.conf" 2>/dev/null); do
    kill "$pid" 2>/dev/null && say "stopped the DNS server (PID $pid) the removed network left running"
  done
  local subnet br
  subnet=$(sed -n 's/^ *- subnet: *//p' "$repo/deploy/docker-compose.yml" | head -n1)
  [ -n "$subnet" ] || return 0
  for br in $(ip -4 -o addr show 2>/dev/null | awk '$2 ~ /^cni-podman/ {print $2 "=" $4}'); do
    case "${br#*=}" in "${subnet%.*/*}".*/"${subnet#*/}") ;; *) continue ;; esac
    br=${br%%=*}
    if [ -z "$(ip -o link show master "$br" 2>/dev/null)" ]; then
      ip link delete "$br" 2>/dev/null && say "removed the stale bridge $br of $subnet"
    fi
  done
  return 0
}
service_pid="" pebble_pid="" cts_pid="" src=""
cleanup() {
  local rc=$?
  set +e
  for p in $pebble_pid $cts_pid; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  if [ -n "${KEEP:-}" ]; then
    say "KEEP set: stack left running; DOCKER_HOST=unix://$sock, podman service PID $service_pid"
    exit $rc
  fi
  if [ -S "$sock" ] && [ -n "$src" ] && [ -f "$src/deploy/docker-compose.yml" ]; then
    (cd "$src/deploy" && compose down -v --timeout 5 >"$cache/logs/down.log" 2>&1)
  fi
  purge
  purge_cni
  if [ -n "$service_pid" ]; then
    kill "$service_pid" 2>/dev/null; wait "$service_pid" 2>/dev/null
  fi
  rm -f "$sock"
  say "done (exit $rc)"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$rundir"
# TMPDIR: buildah keeps RUN --mount=type=cache directories there.
mkdir -p "$cache/tmp"
# podman itself, not a subshell, is $! (so cleanup stops it by PID); it
# does not inherit the lock.
TMPDIR=$cache/tmp podman --root "$cache/storage" --runroot "$rundir/runroot" \
  system service --time=0 "unix://$sock" >"$cache/logs/service.log" 2>&1 9>&- &
service_pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || { cat "$cache/logs/service.log" >&2; fail "podman system service did not open $sock"; }
export DOCKER_HOST=unix://$sock
# docker-compose builds through the Docker API (podman's) rather than the
# `docker` CLI; `docker-compose run` still attaches through the CLI (Debian's
# docker.io; its daemon is never started).
export COMPOSE_DOCKER_CLI_BUILD=0 DOCKER_BUILDKIT=0
purge   # what a killed run left
purge_cni
say "podman service PID $service_pid on $sock"

# ---------------------------------------------------------------------------
# Base images, built once and kept in $cache/storage.
if [ ! -d "$cache/rootfs" ]; then
  say "debootstrap bookworm (minbase) into $cache/rootfs"
  rm -rf "$cache/rootfs.tmp"
  run_logged "$cache/logs/debootstrap.log" debootstrap --variant=minbase --include=ca-certificates,tzdata \
    bookworm "$cache/rootfs.tmp" http://deb.debian.org/debian
  mv "$cache/rootfs.tmp" "$cache/rootfs"
fi
if ! pm image exists docker.io/library/debian:bookworm; then
  say "importing the root as debian:bookworm"
  tar -C "$cache/rootfs" -c . | pm import --change 'CMD ["bash"]' - docker.io/library/debian:bookworm >/dev/null
  pm tag docker.io/library/debian:bookworm docker.io/library/debian:bookworm-slim
fi

goversion=$(go env GOVERSION)        # go1.26.8
gominor=$(echo "${goversion#go}" | cut -d. -f1,2)
golang=docker.io/library/golang:$gominor-bookworm
if [ "$(pm image inspect --format '{{index .Labels "go.version"}}' "$golang" 2>/dev/null)" != "$goversion" ]; then
  say "building $golang from the host's $(go env GOROOT) ($goversion)"
  ctx=$cache/golang-ctx; rm -rf "$ctx"; mkdir -p "$ctx"
  cp -a "$(go env GOROOT)" "$ctx/go"
  # The host's bundle: module downloads go through this network's TLS
  # interception, whose CA only the host knows. Never committed.
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
  cat >"$ctx/Dockerfile" <<DF
FROM docker.io/library/debian:bookworm
COPY go /usr/local/go
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV GOPATH=/go PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    GOTOOLCHAIN=local GOPROXY=$(go env GOPROXY) GOSUMDB=$(go env GOSUMDB)
LABEL go.version=$goversion
WORKDIR /go
DF
  run_logged "$cache/logs/golang.log" pm build -t "$golang" "$ctx"
  rm -rf "$ctx"
fi

distroless=gcr.io/distroless/static-debian12:nonroot
if ! pm image exists "$distroless"; then
  say "building $distroless from the root's CA certificates and tzdata"
  d=$cache/distroless; rm -rf "$d"
  mkdir -p "$d/etc/ssl/certs" "$d/usr/share" "$d/home/nonroot" "$d/tmp"
  cp "$cache/rootfs/etc/ssl/certs/ca-certificates.crt" "$d/etc/ssl/certs/"
  cp -a "$cache/rootfs/usr/share/zoneinfo" "$d/usr/share/"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$d/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$d/etc/group"
  chown 65532:65532 "$d/home/nonroot"; chmod 1777 "$d/tmp"
  tar -C "$d" -c . | pm import --change 'USER 65532:65532' --change 'WORKDIR /home/nonroot' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' - "$distroless" >/dev/null
  rm -rf "$d"
fi
# The compose file's Valkey image cannot be pulled either: a stand-in under
# its name, Debian's Redis 7 (the same protocol and flags) with a
# valkey-server command.
valkey=docker.io/valkey/valkey:8-alpine
if ! pm image exists "$valkey"; then
  say "building $valkey from Debian's redis-server"
  ctx=$cache/valkey-ctx; rm -rf "$ctx"; mkdir -p "$ctx"
  cat >"$ctx/Dockerfile" <<'DF'
FROM docker.io/library/debian:bookworm
RUN apt-get update -q && apt-get install -y -q --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* && ln -s /usr/bin/redis-server /usr/local/bin/valkey-server
USER redis
CMD ["valkey-server"]
DF
  run_logged "$cache/logs/valkey.log" pm build -t "$valkey" "$ctx"
  rm -rf "$ctx"
fi
say "base images ready"

# ---------------------------------------------------------------------------
# The stack, from a copy of the working tree (the test writes config/users
# and config/tls/ where the walk-through does, without touching the repo).
src=$cache/src
rm -rf "$src"; mkdir -p "$src"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -c 2>/dev/null) | tar -C "$src" -x
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("",0)); print(s.getsockname()[1])'; }
export POSTERN_SUBMISSION_PORT=$(free_port) POSTERN_SUBMISSIONS_PORT=$(free_port) \
  POSTERN_ALT_SUBMISSION_PORT=$(free_port) POSTERN_ACME_HTTP_PORT=$(free_port)
# docker-compose v1 over podman's API creates a network with a fixed subnet
# only with the host-local IPAM driver: the one thing this override adds.
# (Compose replaces a network's whole ipam block, so the override repeats
# the subnet, read from docker-compose.yml.)
cd "$src/deploy"
subnet=$(docker-compose -f docker-compose.yml config | sed -n 's/^ *- subnet: *//p; s/^ *subnet: *//p' | head -n1)
[ -n "$subnet" ] || fail "no fixed subnet in docker-compose.yml's networks"
cat >docker-compose.podman.yml <<YML
networks:
  mail:
    ipam:
      config:
        - subnet: $subnet
      options:
        driver: host-local
YML
compose() { docker-compose -p "$project" -f docker-compose.yml -f docker-compose.podman.yml "$@"; }

say "docker-compose build (postern from deploy/Dockerfile, postfix from deploy/postfix/)"
run_logged "$cache/logs/build.log" compose build

image_size=$(pm image inspect --format '{{.Size}}' "docker.io/library/postern:dev")
# 30 MB as `docker images` counts (decimal), not MiB. It was 25 MB while a
# hand-written internal/cli stood in for urfave/cli/v2; the user's design card
# names urfave/cli/v2, whose text/template makes the linker keep every
# exported method (the stripped binary grows from 14.7 MB to 22.8 MB).
[ "$image_size" -lt 30000000 ] || fail "postern image is $image_size bytes, want under 30 MB (30,000,000 bytes)"
say "postern image: $image_size bytes"

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
# A non-loopback address of the host: clients come from it (the published
# ports are DNAT rules, which loopback traffic does not reliably take).
hostip=$(hostname -I | awk '{print $1}')
[ -n "$hostip" ] || fail "the host has no non-loopback address (hostname -I) for the published ports"
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
for addr in $seen $(hostname -I) $gw client-ehlo.dockertest.invalid; do
  case $addr in 127.0.0.1|"") continue ;; esac
  if grep -qwF "$addr" <<<"$msg"; then
    echo "$msg" >&2; fail "the delivered message carries the client's $addr"
  fi
done
say "ok: anonymous Received, none of [$seen$(hostname -I) $gw client-ehlo] in the message"

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
for addr in 127.0.0.1 $(hostname -I); do
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
rm -f "$cache/halfway" "$cache/go"
python3 "$repo/deploy/dockertest/bigsend.py" "$hostip" "$POSTERN_SUBMISSION_PORT" alice@example.org secret \
  "$m5" 20 "$cache/halfway" "$cache/go" >"$cache/logs/bigsend.log" 2>&1 & bs_pid=$!
for _ in $(seq 60); do [ -e "$cache/halfway" ] && break; sleep 0.5; done
[ -e "$cache/halfway" ] || { kill "$bs_pid"; cat "$cache/logs/bigsend.log" >&2; fail "the 20 MB message never got halfway"; }
compose stop postern >"$cache/logs/stop-postern.log" 2>&1 & stop_pid=$!
sleep 3   # SIGTERM delivered: postern is draining
# Postern must still be waiting for the message (stop_grace_period 45 s,
# shutdown timeout 30 s): were it gone, the assertion below would still
# hold but this would not test a drain.
kill -0 "$stop_pid" 2>/dev/null || fail "docker-compose stop postern returned while a message was in flight"
touch "$cache/go"
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
# Scope 4: docker-compose.acme.yml against Pebble on the host. Pebble asks
# pebble-challtestsrv for the name (every name: this host) and validates on
# the published port 80; Postern reaches Pebble through the network's
# gateway. The test's own override only points Postern at Pebble and makes
# it trust Pebble's HTTPS certificate (SSL_CERT_FILE).
command -v pebble >/dev/null && command -v pebble-challtestsrv >/dev/null || missing "pebble (package pebble)"
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
