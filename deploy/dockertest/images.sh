#!/usr/bin/env bash
# The images, inside the sandbox's PID and mount namespaces but in the
# host's network: debootstrap, apt and `go mod download` need it. Every
# build step runs with --network host (docker-compose.podman.yml's
# build.network, `podman build --network host`): podman's default bridge
# network for RUN steps would put a bridge, a network namespace and
# firewall rules on the host, outside the sandbox.
#
# No registry is reachable here, so
# every FROM resolves to an image this script builds locally:
#   debian:bookworm, debian:bookworm-slim  debootstrap --variant=minbase
#   golang:<go major.minor>-bookworm       that root plus the host's Go
#                                          (`go env GOROOT` copied in), the
#                                          host's GOPROXY and CA bundle
#   gcr.io/distroless/static-debian12:nonroot
#                                          a minimal root: CA certificates,
#                                          tzdata, passwd with nonroot=65532
#   valkey/valkey:8-alpine                 Debian's redis-server
# Then `docker-compose build` of the test's copy of the tree ($cache/src).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

trap 'stop_engine' EXIT
start_engine images
say "podman service PID $service_pid on $sock (host network, builds only)"
# The working containers of builds a killed run cut short: buildah's, known
# to the storage only. (Nothing else builds now: run.sh holds the lock.)
pm ps -a --external --format '{{.ID}} {{.Status}}' | while read -r id status; do
  if [ "$status" = Storage ]; then pm rm --storage "$id" >/dev/null; fi
done

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
  run_logged "$cache/logs/golang.log" pm build --network host -t "$golang" "$ctx"
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
  run_logged "$cache/logs/valkey.log" pm build --network host -t "$valkey" "$ctx"
  rm -rf "$ctx"
fi
say "base images ready"

# ---------------------------------------------------------------------------
# The stack, from a copy of the working tree (the test writes config/users
# and config/tls/ where the walk-through does, without touching the repo).
src=$cache/src
rm -rf "$src"
mkdir -p "$src"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -c 2>/dev/null) | tar -C "$src" -x
cd "$src/deploy"
# docker-compose v1 over podman's API creates a network with a fixed subnet
# only with the host-local IPAM driver; builds take the host's network (see
# above). (Compose replaces a network's whole ipam block, so the override
# repeats the subnet, read from docker-compose.yml.)
subnet=$(docker-compose -f docker-compose.yml config | sed -n 's/^ *- subnet: *//p; s/^ *subnet: *//p' | head -n1)
[ -n "$subnet" ] || fail "no fixed subnet in docker-compose.yml's networks"
cat >docker-compose.podman.yml <<YML
services:
  postern:
    build:
      network: host
  postfix:
    build:
      network: host
networks:
  mail:
    ipam:
      config:
        - subnet: $subnet
      options:
        driver: host-local
YML

say "docker-compose build (postern from deploy/Dockerfile, postfix from deploy/postfix/)"
run_logged "$cache/logs/build.log" compose build

image_size=$(pm image inspect --format '{{.Size}}' "docker.io/library/postern:dev")
# 30 MB as `docker images` counts (decimal), not MiB. It was 25 MB while a
# hand-written internal/cli stood in for urfave/cli/v2; the user's design card
# names urfave/cli/v2, whose text/template makes the linker keep every
# exported method (the stripped binary grows from 14.7 MB to 22.8 MB).
[ "$image_size" -lt 30000000 ] || fail "postern image is $image_size bytes, want under 30 MB (30,000,000 bytes)"
say "postern image: $image_size bytes"
