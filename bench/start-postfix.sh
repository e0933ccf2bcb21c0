#!/usr/bin/env bash
# Postfix's submission service as a private instance (own config, queue and
# data directories under $OUT/postfix; never the system instance), with SASL
# through a private Dovecot instance whose auth listener sits in that queue
# directory. STARTTLS required, AUTH only after TLS, relayhost = the sink.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
port_free "$POSTFIX_PORT"
P=$OUT/postfix D=$OUT/dovecot
mkdir -p "$P/etc" "$P/queue" "$P/data" "$D/run" "$D/state"
chown postfix "$P/data"

# --- Dovecot: SASL only (no protocols), the same passwd-file as Postern.
cat >"$D/dovecot.conf" <<CONF
instance_name = dovecot-bench
base_dir = $D/run
state_dir = $D/state
log_path = $D/dovecot.log
protocols = none
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {
  driver = passwd-file
  args = $USERS
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}
service auth {
  unix_listener $P/queue/private/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
CONF

# --- Postfix main.cf: the submission policy of DESIGN.md, relay to the sink.
cat >"$P/etc/main.cf" <<CONF
compatibility_level = 3.6
queue_directory = $P/queue
data_directory = $P/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-bench
maillog_file = /dev/stdout
myhostname = bench.test
mydomain = bench.test
myorigin = bench.test
mydestination =
local_recipient_maps =
relay_domains =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$SINK_PORT
smtp_tls_security_level = none
message_size_limit = 104857600
mailbox_size_limit = 0
smtpd_tls_chain_files = $KEY, $CERT
smtpd_tls_security_level = encrypt
smtpd_tls_auth_only = yes
smtpd_tls_mandatory_protocols = >=TLSv1.2
smtpd_tls_session_cache_database =
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
smtpd_client_restrictions = permit_sasl_authenticated, reject
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions =
biff = no
CONF

# --- master.cf: Debian's, without the port-25/submission/smtps listeners,
# every service unchrooted, plus our submission listener on a high port.
awk '
  /^#/ || /^[ \t]*$/ { next }
  /^[ \t]/ { if (keep) print; next }
  { keep = !($2 == "inet"); if (!keep) next
    if (NF >= 8) { $5 = "n" }
    print }
' /etc/postfix/master.cf >"$P/etc/master.cf"
cat >>"$P/etc/master.cf" <<CONF
127.0.0.1:$POSTFIX_PORT inet n - n - 100 smtpd
  -o syslog_name=postfix-bench/submission
CONF

postfix -c "$P/etc" set-permissions >/dev/null 2>&1 || true
postfix -c "$P/etc" check
start_bg dovecot dovecot -F -c "$D/dovecot.conf"
for i in $(seq 50); do [ -S "$P/queue/private/auth" ] && break; sleep 0.1; done
[ -S "$P/queue/private/auth" ] || { log "dovecot did not create its auth socket; see $RUN/dovecot.log $D/dovecot.log"; exit 1; }
start_bg postfix postfix -c "$P/etc" start-fg
wait_port "$POSTFIX_PORT"
log "postfix submission on 127.0.0.1:$POSTFIX_PORT (pid $(pid_of postfix)), dovecot auth (pid $(pid_of dovecot))"
