#!/usr/bin/env bash
# `make docker-test`: builds deploy/Dockerfile and deploy/postfix/ for real,
# brings up deploy/docker-compose.yml and talks to it with swaks, msmtp and
# python3 (bigsend.py), then again with docker-compose.acme.yml against
# Pebble (issue 11). A shell script, not a Go test: every step is a command
# a user types (docker-compose, swaks), and it runs once, after `go test`,
# outside its 20-minute budget and -race.
#
# The whole run is a sandbox of its own (issue 19): this script checks the
# tools, takes the lock and moves into cgroups of the run's own, then
# sandbox.sh runs as PID 1 of new PID, mount and cgroup namespaces, with
# tmpfs over /run, /var/lib/cni and /dev/shm:
#   images.sh  base images and `docker-compose build`, in the host's network
#              (debootstrap, apt and the Go module proxy need it; every build
#              step runs with --network host, so podman creates no bridge,
#              network namespace or firewall rule there);
#   stack.sh   in a network namespace of its own as well (loopback, plus one
#              address for the "host"): the compose stack, its bridge,
#              iptables rules, dnsmasq and conmons live there.
# When the run ends, however it ends (kill -9 included: --kill-child takes
# PID 1 down, and with it every process of the namespace), the kernel tears
# all of it down, and reap-cgroups.sh removes the run's cgroups: nothing is
# left on the host. Only the cache (below) persists: images, and container
# records a killed run left, which the next run removes first.
#
# No registry is reachable here, so every FROM resolves to an image
# images.sh builds locally (debootstrap, the host's Go; see there). The
# engine is Debian's podman (`podman system service` gives the Docker API
# that docker-compose v1 talks to) with its own containers.conf (runc,
# rlimits this machine allows) and its own storage under the cache
# directory, so a second run is fast and /etc is left alone.
#
# Under CI=true a missing component is a failure; elsewhere a skip that says
# why. Any failed check exits non-zero with a message saying what failed.
#
# Environment: POSTERN_DOCKER_CACHE (default $XDG_CACHE_HOME/postern-docker),
# KEEP=1 opens a shell in the sandbox when the checks end (the stack still
# up), for debugging; the run ends when you leave it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || missing "needs root (rootful podman, debootstrap, namespaces)"
for tool in podman runc debootstrap docker-compose swaks msmtp openssl python3 go tar unshare ip iptables; do
  command -v "$tool" >/dev/null || missing "$tool not installed"
done
# Without a DNS plugin the CNI network gives no names: postern cannot
# resolve "postfix".
for plugin in bridge portmap host-local firewall; do
  [ -x "/usr/lib/cni/$plugin" ] || missing "CNI plugin /usr/lib/cni/$plugin (package containernetworking-plugins)"
done
[ -x /usr/lib/cni/dnsname ] || missing "podman's CNI network has no service names without /usr/lib/cni/dnsname (package golang-github-containernetworking-plugin-dnsname)"
# (Output in a variable first: grep -q closing the pipe early would fail
# the writer under pipefail.)
out=$(swaks --support 2>&1 || true)
grep -q '^=== TLS supported' <<<"$out" || missing "swaks without TLS (package libnet-ssleay-perl)"
out=$(msmtp --version 2>&1 || true)
grep -Eq 'TLS/SSL library: (GnuTLS|OpenSSL)' <<<"$out" || missing "msmtp without a TLS library"
out=$(docker-compose version 2>&1 || true)
grep -q 'docker-compose version' <<<"$out" || missing "docker-compose does not run (its Python modules): $out"
command -v docker >/dev/null || missing "the docker CLI, which docker-compose run attaches with (package docker.io)"
command -v pebble >/dev/null && command -v pebble-challtestsrv >/dev/null || missing "pebble (package pebble)"
unshare --mount --cgroup --pid --net --fork --kill-child true 2>/dev/null ||
  missing "this kernel (or container) does not let root create mount, cgroup, PID and network namespaces"

mkdir -p "$cache/logs" "$cache/tmp"
exec 9>"$cache/lock"
flock -n 9 || fail "another docker-test holds $cache/lock"
# The run's cgroups: one per hierarchy, below the one this script runs in.
# podman and runc make theirs inside (sandbox.sh gives the sandbox a cgroup
# namespace rooted there); reap-cgroups.sh, which stays outside, removes
# them all when the run has ended, however it ended. (It inherits the lock:
# no next run starts before it is done.)
cgdirs=()
while read -r mnt type opts; do
  key=""
  [ "$type" = cgroup2 ] || key=${opts#rw,}
  cur=$(awk -F: -v k="$key" '$2 == k { print $3 }' /proc/self/cgroup)
  cgdirs+=("$mnt${cur%/}/postern-docker-test.$$")
done < <(cgroup_mounts)
setsid -f "$here/reap-cgroups.sh" $$ "${cgdirs[@]}" </dev/null >>"$cache/logs/reap-cgroups.log" 2>&1
for d in "${cgdirs[@]}"; do
  mkdir "$d"
  # A new cpuset has no CPUs or memory nodes until given its parent's.
  if [ -e "$d/cpuset.cpus" ]; then
    cat "$d/../cpuset.cpus" >"$d/cpuset.cpus"
    cat "$d/../cpuset.mems" >"$d/cpuset.mems"
  fi
  echo $$ >"$d/cgroup.procs"
done

# The lock (fd 9) goes into the sandbox and is released when it ends.
exec unshare --mount --propagation private --cgroup --pid --fork --kill-child --mount-proc -- "$here/sandbox.sh"
