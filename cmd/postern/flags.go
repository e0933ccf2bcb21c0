package main

import (
	"runtime"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/postern/postern/auth/ldap"
	"github.com/postern/postern/internal/autoconfig"
	"github.com/postern/postern/limits"
	"github.com/postern/postern/policy"
	"github.com/postern/postern/proxy"
	"github.com/postern/postern/proxy/listen"
	"github.com/postern/postern/proxy/upstream"
)

// env returns the environment twin of a flag: --max-message-size is
// POSTERN_MAX_MESSAGE_SIZE.
func env(name string) []string {
	return []string{"POSTERN_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))}
}

func str(name, value, usage string) *cli.StringFlag {
	return &cli.StringFlag{Name: name, Value: value, Usage: usage, EnvVars: env(name)}
}

func strs(name string, value []string, usage string) *cli.StringSliceFlag {
	f := &cli.StringSliceFlag{Name: name, Usage: usage, EnvVars: env(name)}
	if value != nil {
		f.Value = cli.NewStringSlice(value...)
	}
	return f
}

func dur(name string, value time.Duration, usage string) *cli.DurationFlag {
	return &cli.DurationFlag{Name: name, Value: value, Usage: usage, EnvVars: env(name)}
}

// defaultSMTPListen is the --listen default: the submission ports 587
// (STARTTLS), 465 (implicit TLS) and 2525 (STARTTLS). It stays in force
// while --listen names no SMTP listener (see splitListen).
func defaultSMTPListen() []string {
	return []string{"starttls=:587", "tls=:465", "starttls=:2525"}
}

// serveFlags are the flags of `serve` and `check-config` (DESIGN.md's
// command-line contract). Every flag has an env twin and a config-file key
// of the same name.
func serveFlags() []cli.Flag {
	return append([]cli.Flag{
		str("config", "", "TOML file with the same keys as the flags (flags and env win)"),
		str("hostname", "", "name in the banner and the Received header (default: the host name)"),
		strs("listen", defaultSMTPListen(), "MODE=ADDR[@PORT], MODE starttls|tls|https|tls+https (https: the autoconfig documents, off by default; tls+https: submission and the documents on one port, e.g. :443, by ALPN); @PORT: the port clients use, when not ADDR's (NAT, port mapping); repeatable; the SMTP defaults stay unless a starttls= or tls= listener is given"),
		strs("upstream", nil, "the internal MTA, HOST:PORT (it must trust Postern via mynetworks); repeatable: the first healthy one in this order gets each transaction, the next is tried when one fails before the message"),
		str("users", "", "users file, Dovecot passwd-file format (login:hash); tried first"),
		str("sender-map", "", "Postfix smtpd_sender_login_maps text file: 'address login[,login]' or '@domain login'"),
		str("tls-cert", "", "certificate chain (PEM)"),
		str("tls-key", "", "private key (PEM)"),
		str("tls-sni-dir", "", "DIR/<host>/{fullchain,privkey}.pem (Let's Encrypt live/) or DIR/<host>.{crt,key}, chosen by SNI"),
		strs("acme-domain", nil, "get a certificate for this name by ACME (repeatable; the allow-list)"),
		str("acme-email", "", "contact address for the ACME account"),
		str("acme-cache", "/var/lib/postern/acme", "directory for ACME account and certificates, or 'redis': shared by every replica through --state's Redis, encrypted, one order per name"),
		str("acme-cache-key-file", "", "with --acme-cache redis: the AES-256 key sealing every entry, 32 bytes or 64 hex digits (openssl rand -hex 32); the same on every replica"),
		str("acme-cache-local", "/var/lib/postern/acme", "with --acme-cache redis: this replica's copy, served while Redis is unreachable ('' keeps none)"),
		str("acme-directory", "https://acme-v02.api.letsencrypt.org/directory", "ACME directory URL (any RFC 8555 CA)"),
		str("acme-http", ":80", "HTTP-01 challenge listener (the CA validates here, never on 587/465; with --autoconfig-domain it also serves the documents); 'none' disables"),
		str("dovecot-auth", "", "Dovecot auth socket: a unix socket path, or HOST:PORT of an inet_listener"),
		str("ldap-url", "", "ldap://host or ldaps://host: authenticate by search then bind"),
		&cli.BoolFlag{Name: "ldap-starttls", Usage: "upgrade ldap:// with StartTLS", EnvVars: env("ldap-starttls")},
		str("ldap-base", "", "search base DN"),
		str("ldap-filter", ldap.DefaultFilter, "search filter; %u is the login (escaped)"),
		str("ldap-bind-dn", "", "DN for the search (anonymous if empty)"),
		str("ldap-bind-password-file", "", "file holding the password of --ldap-bind-dn"),
		str("ldap-alias-attribute", "", "attribute listing further sender addresses of the entry, e.g. mailAlternateAddress"),
		str("ldap-login-attribute", ldap.DefaultLoginAttribute, "attribute whose first value is the account's one identity for limits, suspension, login delay and logs, whatever spelling matched the filter (the entry's DN when it has none)"),
		dur("auth-cache-ttl", 5*time.Minute, "remember a successful login for this long (0 disables)"),
		&cli.IntFlag{Name: "auth-concurrency", Value: runtime.GOMAXPROCS(0), DefaultText: "GOMAXPROCS, the CPUs Go uses", Usage: "password hashes (users file) verified at once; more wait their turn in a queue, up to --auth-timeout (then 454); 0 = no bound", EnvVars: env("auth-concurrency")},
		dur("auth-timeout", proxy.DefaultAuthTimeout, "longest time one AUTH's verification may take, its wait for a --auth-concurrency slot included; then 454 4.7.0 (the backend counts as unavailable)"),
		&cli.IntFlag{Name: "auth-max-failures", Value: limits.DefaultLockoutMaxFailures, Usage: "AUTH attempts per client address (IPv6: per /64) within --auth-lockout-window, counted before the password is checked and given back on success (so also the bound on parallel AUTHs), before it gets 421", EnvVars: env("auth-max-failures")},
		&cli.IntFlag{Name: "auth-max-unavailable", Value: limits.DefaultLockoutMaxUnavailable, Usage: "AUTH attempts per client address (IPv6: per /64) within --auth-lockout-window that no backend could check (454: a backend down), before it gets 421 like --auth-max-failures", EnvVars: env("auth-max-unavailable")},
		dur("auth-lockout-window", limits.DefaultLockoutWindow, "sliding window for --auth-max-failures and --auth-max-unavailable"),
		dur("auth-login-delay", limits.DefaultLoginDelay, "wait before answering an AUTH for a login with one failure within --auth-lockout-window; doubles with each further failure (slows guessing at one login, never refuses it)"),
		dur("auth-login-delay-max", limits.DefaultMaxLoginDelay, "cap of --auth-login-delay's doubling"),
		str("state", "memory", "where the lockout (and sending-limit) counters live: memory (this process) or redis://HOST:PORT/DB, rediss://HOST:PORT/DB (TLS) shared by every replica; while Redis is unreachable each replica counts in its own memory"),
		str("state-password-file", "", "file holding the Redis password for --state (not in the URL, which the process list shows)"),
		str("mynetworks", "", "CIDRs that may relay without AUTH (still over TLS), comma-separated"),
		str("received", string(policy.DefaultReceivedMode), "Received header: anonymous|full|none"),
		&cli.Int64Flag{Name: "max-message-size", Value: proxy.DefaultMaxMessageBytes, Usage: "bytes, advertised in SIZE and enforced while streaming", EnvVars: env("max-message-size")},
		&cli.IntFlag{Name: "max-recipients", Value: proxy.DefaultMaxRecipients, Usage: "recipients per message", EnvVars: env("max-recipients")},
		&cli.IntFlag{Name: "max-auth-failures-per-connection", Value: proxy.DefaultMaxAuthFailures, Usage: "AUTH failures before the connection is closed", EnvVars: env("max-auth-failures-per-connection")},
		dur("command-timeout", proxy.DefaultCommandTimeout, "idle time allowed while waiting for a command or message data"),
		dur("data-timeout", proxy.DefaultDataTimeout, "longest time to receive one message"),
		&cli.IntFlag{Name: "max-connections", Value: listen.DefaultMaxConnections, Usage: "open client connections; more get 421 4.7.0 (0: no limit)", EnvVars: env("max-connections")},
		&cli.IntFlag{Name: "max-connections-per-ip", Value: listen.DefaultMaxConnectionsPerIP, Usage: "open connections per client address (IPv6: per /64), --mynetworks exempt; more get 421 4.7.0 (0: no limit)", EnvVars: env("max-connections-per-ip")},
		&cli.IntFlag{Name: "max-http-connections", Value: listen.DefaultMaxHTTPConnections, Usage: "open connections of the HTTP listeners (--listen https= and --acme-http together; a budget apart from --max-connections); more are closed at accept, before any TLS handshake (at least 1)", EnvVars: env("max-http-connections")},
		&cli.IntFlag{Name: "max-http-connections-per-ip", Value: listen.DefaultMaxHTTPConnectionsPerIP, Usage: "open HTTP connections per client address (IPv6: per /64); more are closed at accept (0: no limit)", EnvVars: env("max-http-connections-per-ip")},
		dur("login-timeout", proxy.DefaultLoginTimeout, "time from connect (TLS handshake included) to a successful AUTH, then 421 4.7.0; --mynetworks exempt (0: none)"),
		dur("upstream-timeout", upstream.DefaultTimeout, "longest wait for each whole reply from the upstream, or for it to take more of the message; then 451 and the connection is dropped"),
		dur("shutdown-timeout", 30*time.Second, "on SIGTERM, time given to sessions in flight before they are closed"),
		str("metrics", "", "ADDR for /metrics (Prometheus), /healthz and /readyz, e.g. 127.0.0.1:9090"),
		&cli.BoolFlag{Name: "pprof", Usage: "also serve /debug/pprof/ on the --metrics listener (keep it private)", EnvVars: env("pprof")},
		str("proxy-protocol-from", "", "CIDRs of load balancers whose PROXY protocol v1/v2 header is honoured"),
		dur("upstream-hold-down", upstream.DefaultHoldDown, "how long an upstream that failed is skipped while another --upstream is healthy"),
		&cli.IntFlag{Name: "upstream-pool", Value: proxy.DefaultUpstreamPool, Usage: "idle upstream connections kept for the next client session (0 disables; off with --upstream-xclient)", EnvVars: env("upstream-pool")},
		str("upstream-tls", "none", "none|starttls|tls towards the upstream"),
		str("upstream-tls-ca", "", "PEM file of CAs trusted for the upstream's certificate (default: the system's)"),
		str("upstream-auth-file", "", "file with 'username:password' to AUTH to the upstream (needs --upstream-tls)"),
		&cli.BoolFlag{Name: "upstream-xclient", Usage: "send Postfix XCLIENT LOGIN= (ADDR= only with --received full)", EnvVars: env("upstream-xclient")},
		strs("autoconfig-domain", nil, "mail domain whose clients get autoconfig/autodiscover/Apple profile/MTA-STS documents (repeatable)"),
		str("autoconfig-imap", "", "HOST:PORT of the IMAP server named in the documents (993: implicit TLS, else STARTTLS)"),
		str("autoconfig-username", autoconfig.DefaultUsername, "login named in the documents: %EMAILADDRESS%, %EMAILLOCALPART%, %EMAILDOMAIN%"),
		str("mta-sts-mode", "", "testing|enforce|none: serve an MTA-STS policy on mta-sts.DOMAIN (empty: none served)"),
		strs("mta-sts-mx", nil, "MX host (or *.domain) of the MTA-STS policy (repeatable)"),
		dur("mta-sts-max-age", autoconfig.DefaultMTASTSMaxAge, "max_age of the MTA-STS policy"),
		str("tls-rpt-email", "", "address for TLS reports (RFC 8460), named in the _smtp._tls record of dns-records"),
		str("log-format", "text", "text|json"),
		str("log-level", "info", "debug|info|warn|error"),
	}, append(limitFlags(), sharedFlags()...)...)
}
