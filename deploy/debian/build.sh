#!/usr/bin/env bash
# Builds the Debian package of Postern: `make deb` runs it.
#   deploy/debian/build.sh OUTDIR   → OUTDIR/postern_VERSION_ARCH.deb
# dpkg-deb from a staged tree (no debhelper, no packager dependency). The
# binary is built as in deploy/Dockerfile: static (CGO_ENABLED=0), -s -w,
# tags urfave_cli_no_docs,urfave_cli_no_suggest. The man page comes from a
# second build with urfave/cli's generator (`postern man`), so it is the
# help of the very same commands.
# Environment: GO (default go), VERSION (default from the last commit:
# 0~gitYYYYMMDDhhmmss.SHA), GOARCH (default go env GOARCH).
set -euo pipefail
out=${1:?usage: build.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
go=${GO:-go}

goarch=${GOARCH:-$("$go" env GOARCH)}
case $goarch in
	386) arch=i386 ;;
	arm) arch=armhf; export GOARM=${GOARM:-7} ;;
	*) arch=$goarch ;;
esac
if [ -z "${VERSION:-}" ]; then
	VERSION=0~git$(TZ=UTC git -C "$repo" log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S).$(git -C "$repo" rev-parse --short=12 HEAD)
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
stage=$(mktemp -d "$out/stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/root

install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/usr/lib/systemd/system" \
	"$root/usr/share/man/man8" "$root/usr/share/doc/postern/examples" \
	"$root/etc/default" "$root/etc/fail2ban/filter.d" "$root/etc/fail2ban/jail.d"
install -d -m 0750 "$root/etc/postern"

(cd "$repo" && CGO_ENABLED=0 GOARCH=$goarch "$go" build -trimpath \
	-tags urfave_cli_no_docs,urfave_cli_no_suggest \
	-ldflags "-s -w -X main.version=$VERSION" -o "$root/usr/bin/postern" ./cmd/postern)
chmod 0755 "$root/usr/bin/postern"
# The man page, from a host build with the generator.
(cd "$repo" && CGO_ENABLED=0 GOARCH= GOARM= "$go" build -trimpath -ldflags "-X main.version=$VERSION" \
	-o "$stage/postern-man" ./cmd/postern)
"$stage/postern-man" man | gzip -9n >"$root/usr/share/man/man8/postern.8.gz"

# The unit of deploy/systemd with the package's binary path.
sed 's|/usr/local/bin/postern|/usr/bin/postern|g' "$repo/deploy/systemd/postern.service" \
	>"$root/usr/lib/systemd/system/postern.service"
install -m 0644 "$repo/deploy/systemd/postern.default" "$root/etc/default/postern"
install -m 0640 "$here/postern.toml" "$root/etc/postern/postern.toml"
install -m 0644 "$repo/deploy/fail2ban/filter.d/postern.conf" "$root/etc/fail2ban/filter.d/postern.conf"
# The jail is shipped off: the administrator turns it on in jail.local or
# here, once fail2ban reads the service's journal.
sed 's/^enabled *= *true$/enabled  = false/' "$repo/deploy/fail2ban/jail.d/postern.conf" \
	>"$root/etc/fail2ban/jail.d/postern.conf"
grep -q '^enabled  = false$' "$root/etc/fail2ban/jail.d/postern.conf" || {
	echo "build.sh: could not turn the fail2ban jail off" >&2; exit 1; }
chmod 0644 "$root/etc/fail2ban/jail.d/postern.conf"
install -m 0644 "$repo/deploy/config/sender_login_maps" "$repo/deploy/config/postern.toml.example" \
	"$root/usr/share/doc/postern/examples/"

sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$arch/" "$here/control.in" >"$root/DEBIAN/control"
echo "Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)" >>"$root/DEBIAN/control"
(cd "$root" && find etc -type f | sed 's|^|/|' | sort) >"$root/DEBIAN/conffiles"
install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$root/DEBIAN/"

deb=$out/postern_${VERSION}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
