#!/usr/bin/env bash
# reap-cgroups.sh PID DIR...: the one thing the kernel does not tear down
# with the sandbox's namespaces is a cgroup directory, so run.sh puts the
# whole run in cgroups of its own (DIR..., one per hierarchy, named after
# PID) and starts this, in a session of its own, before it moves in. Once
# PID (the sandbox's unshare) has gone, however it ended, this removes those
# directories and everything podman and runc made below them, children
# first. Nothing else: it never looks outside DIR.
set -u
pid=$1
shift
tail --pid="$pid" -f /dev/null
# The namespace's processes die as PID 1 does, a moment after unshare; a
# cgroup can be removed once its last process has.
for _ in $(seq 100); do
  left=$(find "$@" -depth -type d 2>/dev/null)
  [ -n "$left" ] || exit 0
  # shellcheck disable=SC2086 # cgroup paths have no spaces; one rmdir, children first
  rmdir $left 2>/dev/null
  sleep 0.1
done
echo "reap-cgroups: still there after 10 s: $left" >&2
exit 1
