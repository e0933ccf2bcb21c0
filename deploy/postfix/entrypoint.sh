#!/bin/sh
# Configures Postfix from the environment, then runs the command (by default
# `postfix start-fg`, Postfix in the foreground as PID 1's child-less main).
#   POSTFIX_MYHOSTNAME   myhostname (default mail.example.org)
#   POSTFIX_MYNETWORKS   who may relay: Postern's network (default 172.30.25.0/24)
#   POSTFIX_RELAYHOST    smarthost, e.g. [smtp.provider.example]:587 (default: direct MX delivery)
#   POSTFIX_CATCHALL     local user receiving every message (demo); empty = deliver for real
#   POSTFIX_XCLIENT_HOSTS  smtpd_authorized_xclient_hosts, for postern --upstream-xclient
set -eu

postconf -e "myhostname = ${POSTFIX_MYHOSTNAME:-mail.example.org}"
# The network's gateway is the Docker host: every process on the host
# reaches this container through it, so it is excluded from the relay
# network (first match wins, "!" excludes).
gw=$(awk '$2 == "00000000" { print $3; exit }' /proc/net/route)
notgw=""
if [ -n "$gw" ]; then
  notgw="!$(printf '%d.%d.%d.%d' "0x$(echo "$gw" | cut -c7-8)" "0x$(echo "$gw" | cut -c5-6)" \
    "0x$(echo "$gw" | cut -c3-4)" "0x$(echo "$gw" | cut -c1-2)")"
fi
postconf -e "mynetworks = 127.0.0.0/8 $notgw ${POSTFIX_MYNETWORKS:-172.30.25.0/24}"
postconf -e "relayhost = ${POSTFIX_RELAYHOST:-}"
postconf -e "smtpd_authorized_xclient_hosts = ${POSTFIX_XCLIENT_HOSTS:-}"

if [ -n "${POSTFIX_CATCHALL:-}" ]; then
  printf '/./ %s\n' "$POSTFIX_CATCHALL" > /etc/postfix/catchall
  postconf -e "virtual_alias_maps = regexp:/etc/postfix/catchall"
else
  postconf -X virtual_alias_maps
fi

# Volumes start empty (or from an older image): recreate what Postfix needs.
postfix set-permissions >/dev/null 2>&1 || true
newaliases
postfix check
exec "$@"
