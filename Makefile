# Postern: `make test` installs the real components the tests talk to (when it
# can: root or sudo, and apt) and runs every test. Under CI=true a component
# that is still missing fails the run instead of skipping tests.

GO       ?= go
PKGS     ?= ./...
# Where the fault ledger (ledger/) keeps its seed, logs and ledger, in
# `make test` as in `make ledger` (build/ is git-ignored).
LEDGER_ARTIFACTS ?= $(CURDIR)/build/ledger
# Debian packages of the real peers the tests start: mail clients, Postfix as
# the upstream, Dovecot and slapd as auth servers, Pebble as ACME CA, openssl,
# BIND (named-checkzone and named load the `postern dns-records` output, dig
# resolves it).
# .ci/install-deps installs without Recommends, so every part a test needs is
# named here, not only the tool: swaks speaks TLS only with libnet-ssleay-perl
# (a Recommends); Postfix's Cyrus SASL lists no mechanism without
# libsasl2-modules (a Suggests); the systemd unit's ExecReload=/bin/kill is
# procps's; `go test -race` needs cgo, i.e. gcc and libc6-dev. `make
# docker-test` runs the compose stack on podman (runc: crun refuses hybrid
# cgroups) with the CNI plugins, iptables for published ports and the
# dnsname plugin for service names, docker.io for the `docker` CLI that
# `docker-compose run` attaches with (its daemon is never started);
# debootstrap makes the base images;
# redis-server backs the shared-state (--state redis://) tests; curl is a
# client that sends bare-LF messages (normalize_e2e_test.go).
# The client matrix (clients_e2e_test.go) runs swaks, msmtp, curl, python3's
# smtplib, Perl's Net::SMTP (TLS: libio-socket-ssl-perl, AUTH:
# libauthen-sasl-perl), s-nail, neomutt, PHPMailer (libphp-phpmailer, run by
# php-cli) and nodemailer (nodejs; npm installs it, NPM_DIRS below).
# make docker-test runs in namespaces of its own: unshare, setsid (util-linux),
# ip (iproute2).
DEB_PKGS := postfix libsasl2-modules swaks libnet-ssleay-perl msmtp dovecot-core apache2-utils \
	slapd ldap-utils pebble openssl bind9-utils bind9 bind9-dnsutils python3 ca-certificates \
	docker-compose fail2ban haproxy systemd procps gcc libc6-dev \
	podman runc debootstrap containernetworking-plugins iptables \
	golang-github-containernetworking-plugin-dnsname docker.io redis-server curl \
	libio-socket-ssl-perl libauthen-sasl-perl s-nail neomutt php-cli libphp-phpmailer nodejs \
	iproute2 util-linux
# npm packages, each directory with a committed package-lock.json (npm ci).
# Debian's npm is installed only where npm is missing: NodeSource's nodejs
# carries its own and conflicts with Debian's npm package.
NPM_DIRS := cmd/postern/testdata/clients/nodemailer

.PHONY: all build deb test deps check fuzz bench demo staticcheck fork-check docker-test ledger

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o postern ./cmd/postern

# The Debian package: build/deb/postern_VERSION_ARCH.deb (deploy/debian/;
# tested by deploy/deb_test.go, which installs and purges it in a Debian root).
deb:
	GO=$(GO) ./deploy/debian/build.sh build/deb

demo:
	$(GO) run ./cmd/postern demo

deps:
	@./.ci/install-deps $(DEB_PKGS)
	@command -v npm >/dev/null || ./.ci/install-deps npm
	@for d in $(NPM_DIRS); do ./.ci/install-npm $$d; done

test: deps fork-check
	$(GO) vet $(PKGS)
	LEDGER_ARTIFACTS=$(LEDGER_ARTIFACTS) $(GO) test -race -count=1 -timeout 30m $(PKGS)
	cd third_party/go-smtp && $(GO) test -race -count=1 ./...
	./deploy/dockertest/run.sh

# The fault ledger (ledger/, issue 21): LEDGER_N messages (default 2,000,
# the size `make test` runs) through three replicas behind HAProxy while a
# fault script on LEDGER_SEED kills, drains, reloads and pauses the parts;
# then every message is accounted for. The seed, the logs and the ledger
# stay in LEDGER_ARTIFACTS (git-ignored). By hand: LEDGER_N=20000 make ledger.
ledger: deps
	rm -rf $(LEDGER_ARTIFACTS)
	LEDGER_ARTIFACTS=$(LEDGER_ARTIFACTS) $(GO) test -race -count=1 -v -timeout 90m -run '^TestLedger$$' ./ledger/

# Builds deploy/Dockerfile and deploy/postfix/ for real and tests the compose
# stack (podman as the engine; see deploy/dockertest/run.sh) in PID, mount
# and network namespaces of its own: nothing it starts or creates outlives
# it, even under kill -9. Caches in $(XDG_CACHE_HOME)/postern-docker or
# POSTERN_DOCKER_CACHE.
docker-test: deps
	./deploy/dockertest/run.sh

# third_party/go-smtp must be the release go.mod requires plus
# third_party/go-smtp/patches/, byte for byte (see patches/README.md).
fork-check:
	./.ci/fork-check

# Static checks run by `make check` (staticcheck is installed on first use).
check:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@latest $(PKGS)

# A short run of every fuzz target (FUZZTIME each).
FUZZTIME ?= 15s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test $$pkg -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) || exit 1; \
	  done; \
	done
