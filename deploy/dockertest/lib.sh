# Sourced by run.sh, sandbox.sh, images.sh and stack.sh: the settings and
# helpers they share. Not executable on its own.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$repo/deploy/dockertest
cache=${POSTERN_DOCKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/postern-docker}
# podman's runroot, tmp_dir and network configs, and its socket: on the
# sandbox's own tmpfs (sandbox.sh), so they vanish with it.
rundir=/run/postern-docker-test
sock=$rundir/podman.sock
project=posterndt
t0=${POSTERN_DOCKERTEST_T0:-$(date +%s)}
export POSTERN_DOCKERTEST_T0=$t0

say() { printf '== [%3ss] %s\n' "$(($(date +%s) - t0))" "$*" >&2; }
fail() {
  printf 'docker-test: FAIL: %s\n' "$*" >&2
  exit 1
}
# missing: a component is not there; a failure under CI=true, else a skip.
missing() {
  if [ "${CI:-}" = true ]; then fail "$* (run \`make deps\` as root)"; fi
  printf 'docker-test: SKIP: %s (run `make deps` as root; CI=true makes this a failure)\n' "$*" >&2
  exit 0
}

# Known failures of podman on this kind of machine, turned into advice.
explain() {
  local log=$1
  if grep -q 'setrlimit RLIMIT_NOFILE: Operation not permitted' "$log"; then
    echo "podman's default rlimits exceed this machine's hard limit (ulimit -Hn = $(ulimit -Hn)): default_ulimits in $rundir/containers.conf must be at most that" >&2
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
  local log=$1
  shift
  if ! "$@" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    explain "$log"
    fail "$* (full log: $log)"
  fi
}

# The engine: our own containers.conf (written by sandbox.sh), storage in
# the cache (images survive runs), everything else in $rundir.
export CONTAINERS_CONF=$rundir/containers.conf
pm() { podman --root "$cache/storage" --runroot "$rundir/runroot" "$@"; }

# start_engine: `podman system service` (the Docker API that docker-compose
# v1 talks to) on $sock, in the caller's network namespace.
# docker-compose builds through that API rather than the `docker` CLI;
# `docker-compose run` still attaches through the CLI (Debian's docker.io;
# its daemon is never started).
service_pid=""
start_engine() {
  # TMPDIR: buildah keeps RUN --mount=type=cache directories there.
  # podman itself, not a subshell, is $! (so stop_engine stops it by PID).
  TMPDIR=$cache/tmp podman --root "$cache/storage" --runroot "$rundir/runroot" system service --time=0 "unix://$sock" >"$cache/logs/service-$1.log" 2>&1 9>&- &
  service_pid=$!
  for _ in $(seq 100); do
    [ -S "$sock" ] && break
    sleep 0.1
  done
  [ -S "$sock" ] || {
    cat "$cache/logs/service-$1.log" >&2
    fail "podman system service did not open $sock"
  }
  export DOCKER_HOST=unix://$sock COMPOSE_DOCKER_CLI_BUILD=0 DOCKER_BUILDKIT=0
}
stop_engine() {
  [ -n "$service_pid" ] || return 0
  kill "$service_pid" 2>/dev/null
  wait "$service_pid" 2>/dev/null
  service_pid=""
  rm -f "$sock"
}

# compose: docker-compose on the test's copy of the tree ($cache/src/deploy),
# with docker-compose.podman.yml (written by images.sh) on top.
compose() { docker-compose -p "$project" -f docker-compose.yml -f docker-compose.podman.yml "$@"; }

# cgroup_mounts: every cgroup hierarchy as "MOUNTPOINT TYPE OPTIONS"
# (OPTIONS: the superblock's, e.g. rw,memory or rw,name=systemd).
cgroup_mounts() {
  awk '{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i+1) ~ /^cgroup2?$/) print $5, $(i+1), $(i+3); break } }' /proc/self/mountinfo
}
