#!/usr/bin/env bash
# Installs the peers of the side-by-side benchmark: Postfix + Dovecot (Debian),
# nginx with the mail module (Debian), Haraka (npm, into bench/.work/haraka).
# Debian must not start the system services while installing: policy-rc.d
# says "no" for the duration and is removed afterwards.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${BENCH_OUT:-$here/out}
mkdir -p "$work"

need=()
command -v postfix >/dev/null || need+=(postfix)
command -v dovecot >/dev/null || need+=(dovecot-core)
command -v nginx >/dev/null || need+=(nginx-light)
[ -e /usr/lib/nginx/modules/ngx_mail_module.so ] || need+=(libnginx-mod-mail)
command -v openssl >/dev/null || need+=(openssl)
command -v node >/dev/null || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "install.sh: need root for apt-get install ${need[*]}" >&2; exit 1; fi
  created=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; created=1
  fi
  trap '[ $created = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}"
fi

if [ ! -x "$work/haraka/node_modules/.bin/haraka" ]; then
  mkdir -p "$work/haraka"
  (cd "$work/haraka" && { [ -f package.json ] || npm init -y >/dev/null; } &&
    npm install --no-audit --no-fund --loglevel=error Haraka@3)
fi
echo "install.sh: peers installed"
