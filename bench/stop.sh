#!/usr/bin/env bash
# Stops every process the benchmark started, by the PIDs it recorded.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
stop_postfix
for name in profile storm-postern postern postern-before postern-nocache haraka nginx authhttp nginx-fastauth authhttp-fastauth dovecot sink-starttls sink; do
  stop_pid "$name"
done
log "stopped"
