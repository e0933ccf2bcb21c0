#!/usr/bin/env bash
# PID 1 of the docker-test's PID, mount and cgroup namespaces (run.sh starts
# it with `unshare --mount --cgroup --pid --fork --kill-child --mount-proc`).
# Everything podman, runc and the CNI plugins write outside the cache goes to
# tmpfs mounts that exist only here: /run (runc's state, podman's runroot and
# tmp_dir, the network namespaces' mount points under /run/netns, dnsmasq's
# config, the xtables lock), /var/lib/cni (address reservations and the
# plugins' result cache) and /dev/shm (podman's lock segment). The mounts go
# when the last process of the namespace does, with whatever a killed run
# left in them; the network side lives in stack.sh's network namespace.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ "$$" = 1 ] || fail "sandbox.sh runs as PID 1 of its own namespaces; start run.sh"
mount -t tmpfs -o mode=0755 postern-docker-test /run
mkdir -p /var/lib/cni
mount -t tmpfs -o mode=0755 postern-docker-test /var/lib/cni
mkdir -p "$rundir/cni" /run/lock /run/netns
ln -s /dev/shm /run/shm
# podman's locks (a shared-memory segment, libpod_lock) start afresh too.
mount -t tmpfs -o mode=1777 postern-docker-test /dev/shm
# The cgroup hierarchies mounted afresh, so that this cgroup namespace's
# root (the run's own cgroup, see run.sh) is their root here: podman's
# libpod_parent and every container's cgroup go below it.
mounts=$(cgroup_mounts)
mount -t tmpfs -o mode=0755 postern-docker-test /sys/fs/cgroup
while read -r mnt type opts; do
  mkdir -p "$mnt"
  case $type,$opts in
    cgroup,rw,name=*) opts="$opts,none" ;; # a named hierarchy, no controller
  esac
  mount -t "$type" -o "$opts" cgroup "$mnt"
done <<<"$mounts"

nofile=$(ulimit -Hn)
[ "$nofile" = unlimited ] && nofile=20000
[ "$nofile" -gt 20000 ] && nofile=20000
cat >"$CONTAINERS_CONF" <<CONF
# Written by deploy/dockertest/sandbox.sh.
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
# Networks (the compose project's) last one run, like the namespace they
# live in.
network_config_dir = "$rundir/cni"
CONF

"$here/images.sh"
# The stack in a network namespace of its own, nested in this one's PID and
# mount namespaces (it dies with them).
unshare --net -- "$here/stack.sh"
