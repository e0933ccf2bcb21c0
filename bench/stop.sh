#!/usr/bin/env bash
# Stops every process the benchmark started, by the PIDs it recorded.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
stop_postfix
for name in profile postern postern-nocache haraka nginx authhttp dovecot sink; do
  stop_pid "$name"
done
log "stopped"
