package main

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/postern/postern/auth/ldap"
	"github.com/postern/postern/cmd/postern/internal/serve"
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

// serveFlags are the flags of `serve` and `check-config` (DESIGN.md's
// command-line contract). Every flag has an env twin and a config-file key
// of the same name, and a field of serve.Config (serveConfig). Their
// defaults are the owning packages' Default* constants.
func serveFlags() []cli.Flag {
	return append([]cli.Flag{
		str("config", "", "TOML file with the same keys as the flags (flags and env win)"),
		str("hostname", "", "name in the banner and the Received header (default: the host name)"),
		strs("listen", serve.DefaultSMTPListen(), "MODE=ADDR[@PORT], MODE starttls|tls|https|tls+https (https: the autoconfig documents, off by default; tls+https: submission and the documents on one port, e.g. :443, by ALPN); @PORT: the port clients use, when not ADDR's (NAT, port mapping); repeatable; the SMTP defaults stay unless a starttls= or tls= listener is given"),
		strs("upstream", nil, "the internal MTA, HOST:PORT (it must trust Postern via mynetworks); repeatable: the first healthy one in this order gets each transaction, the next is tried when one fails before the message"),
		str("users", "", "users file, Dovecot passwd-file format (login:hash); tried first"),
		str("sender-map", "", "Postfix smtpd_sender_login_maps text file: 'address login[,login]' or '@domain login'"),
		str("tls-cert", "", "certificate chain (PEM)"),
		str("tls-key", "", "private key (PEM)"),
		str("tls-sni-dir", "", "DIR/<host>/{fullchain,privkey}.pem (Let's Encrypt live/) or DIR/<host>.{crt,key}, chosen by SNI"),
		strs("acme-domain", nil, "get a certificate for this name by ACME (repeatable; the allow-list)"),
		str("acme-email", "", "contact address for the ACME account"),
		str("acme-cache", serve.DefaultACMECacheDir, "directory for ACME account and certificates, or 'redis': shared by every replica through --state's Redis, encrypted, one order per name"),
		str("acme-cache-key-file", "", "with --acme-cache redis: the AES-256 key sealing every entry, 32 bytes or 64 hex digits (openssl rand -hex 32); the same on every replica"),
		str("acme-cache-local", serve.DefaultACMECacheDir, "with --acme-cache redis: this replica's copy, served while Redis is unreachable ('' keeps none)"),
		str("acme-directory", serve.DefaultACMEDirectory, "ACME directory URL (any RFC 8555 CA)"),
		str("acme-http", serve.DefaultACMEHTTP, "HTTP-01 challenge listener (the CA validates here, never on 587/465; with --autoconfig-domain it also serves the documents); 'none' disables"),
		str("dovecot-auth", "", "Dovecot auth socket: a unix socket path, or HOST:PORT of an inet_listener"),
		str("ldap-url", "", "ldap://host or ldaps://host: authenticate by search then bind"),
		&cli.BoolFlag{Name: "ldap-starttls", Usage: "upgrade ldap:// with StartTLS", EnvVars: env("ldap-starttls")},
		str("ldap-base", "", "search base DN"),
		str("ldap-filter", ldap.DefaultFilter, "search filter; %u is the login (escaped)"),
		str("ldap-bind-dn", "", "DN for the search (anonymous if empty)"),
		str("ldap-bind-password-file", "", "file holding the password of --ldap-bind-dn"),
		str("ldap-alias-attribute", "", "attribute listing further sender addresses of the entry, e.g. mailAlternateAddress"),
		str("ldap-login-attribute", ldap.DefaultLoginAttribute, "attribute whose first value is the account's one identity for limits, suspension, login delay and logs, whatever spelling matched the filter (the entry's DN when it has none)"),
		dur("auth-cache-ttl", serve.DefaultAuthCacheTTL, "remember a successful login for this long (0 disables)"),
		&cli.IntFlag{Name: "auth-concurrency", Value: runtime.GOMAXPROCS(0), DefaultText: "GOMAXPROCS, the CPUs Go uses", Usage: "password hashes (users file) verified at once; more wait their turn in a queue, up to --auth-timeout (then 454); 0 = no bound", EnvVars: env("auth-concurrency")},
		dur("auth-timeout", proxy.DefaultAuthTimeout, "longest time one AUTH's verification may take, its wait for a --auth-concurrency slot included; then 454 4.7.0 (the backend counts as unavailable)"),
		&cli.IntFlag{Name: "auth-max-failures", Value: limits.DefaultLockoutMaxFailures, Usage: "AUTH attempts per client address (IPv6: per /64) within --auth-lockout-window, counted before the password is checked and given back on success (so also the bound on parallel AUTHs), before it gets 421", EnvVars: env("auth-max-failures")},
		&cli.IntFlag{Name: "auth-max-unavailable", Value: limits.DefaultLockoutMaxUnavailable, Usage: "AUTH attempts per client address (IPv6: per /64) within --auth-lockout-window that no backend could check (454: a backend down), before it gets 421 like --auth-max-failures", EnvVars: env("auth-max-unavailable")},
		dur("auth-lockout-window", limits.DefaultLockoutWindow, "sliding window for --auth-max-failures and --auth-max-unavailable"),
		dur("auth-login-delay", limits.DefaultLoginDelay, "wait before answering an AUTH for a login with one failure within --auth-lockout-window; doubles with each further failure (slows guessing at one login, never refuses it)"),
		dur("auth-login-delay-max", limits.DefaultMaxLoginDelay, "cap of --auth-login-delay's doubling"),
		str("state", serve.DefaultState, "where the lockout (and sending-limit) counters live: memory (this process) or redis://HOST:PORT/DB, rediss://HOST:PORT/DB (TLS) shared by every replica; while Redis is unreachable each replica counts in its own memory"),
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
		dur("shutdown-timeout", serve.DefaultShutdownTimeout, "on SIGTERM, time given to sessions in flight before they are closed"),
		str("metrics", "", "ADDR for /metrics (Prometheus), /healthz and /readyz, e.g. 127.0.0.1:9090"),
		&cli.BoolFlag{Name: "pprof", Usage: "also serve /debug/pprof/ on the --metrics listener (keep it private)", EnvVars: env("pprof")},
		str("proxy-protocol-from", "", "CIDRs of load balancers whose PROXY protocol v1/v2 header is honoured"),
		dur("upstream-hold-down", upstream.DefaultHoldDown, "how long an upstream that failed is skipped while another --upstream is healthy"),
		&cli.IntFlag{Name: "upstream-pool", Value: proxy.DefaultUpstreamPool, Usage: "idle upstream connections kept for the next client session (0 disables; off with --upstream-xclient)", EnvVars: env("upstream-pool")},
		str("upstream-tls", serve.DefaultUpstreamTLS, "none|starttls|tls towards the upstream"),
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
		str("log-format", defaultLogFormat, "text|json"),
		str("log-level", defaultLogLevel, "debug|info|warn|error"),
	}, append(limitFlags(), sharedFlags()...)...)
}

// limitFlags are the flags of the sending limits, suspensions and alerts
// (issue 12), part of serveFlags.
func limitFlags() []cli.Flag {
	return []cli.Flag{
		str("limit-messages", limits.DefaultLimitMessages.String(), "messages per login, N/WINDOW sliding (counted at MAIL; given back only when the upstream refuses); over it MAIL gets 451 4.7.1; * = no limit"),
		str("limit-recipients", limits.DefaultLimitRecipients.String(), "recipients accepted by the upstream per login, N/WINDOW sliding; the RCPT crossing it gets 451 4.7.1; * = no limit"),
		str("limit-file", "", "per-login or per-@domain overrides: 'LOGIN|@DOMAIN messages=N/WINDOW recipients=N/WINDOW' or 'LOGIN *' (no limit); reloaded on SIGHUP"),
		&cli.IntFlag{Name: "suspend-after", Value: limits.DefaultSuspendAfter, Usage: "suspend a login whose attempts reach this many times a limit within its window (attempts over the limit count); 0 = never", EnvVars: env("suspend-after")},
		str("suspend-rejected-ratio", strconv.Itoa(limits.DefaultSuspendRejectedRatio)+"%", fmt.Sprintf("suspend a login when more than this share of at least %d recipients within %s were refused by the upstream; 0 = never", limits.DefaultSuspendRejectedMin, strings.TrimSuffix(limits.DefaultSuspendRejectedWindow.String(), "0m0s"))),
		dur("suspend-for", limits.DefaultSuspendFor, "how long a suspension lasts (AUTH answers 535 5.7.8 meanwhile); 'postern unsuspend LOGIN' lifts it earlier"),
		str("alert-webhook", "", "URL receiving a JSON POST on each suspension and lockout (retried, never blocking a session)"),
		str("check-header-from", string(policy.DefaultHeaderFromMode), "off|warn|enforce: the From: header's addresses must be owned by the login (sender map rules); enforce refuses with 553 5.7.1 before the upstream gets the message"),
		str("control-socket", limits.DefaultControlSocket, "unix socket (mode 0600) answering 'postern status' and 'postern unsuspend'; 'none' disables; the default is skipped if its directory does not exist"),
	}
}

// sharedFlags are the flags of the shared listener, --listen tls+https=ADDR
// (issue 20): submission over implicit TLS and the HTTPS documents on one
// port, told apart by ALPN, then by the TLS server name, then by who speaks
// first (proxy/shared.go).
func sharedFlags() []cli.Flag {
	return []cli.Flag{
		strs("shared-smtp-name", nil, "TLS server name that sends a client offering no ALPN on the tls+https listener straight to SMTP, besides --hostname (repeatable)"),
		dur("shared-first-bytes-wait", listen.DefaultSharedFirstBytesWait, "on the tls+https listener, how long a client offering no ALPN and no SMTP server name may take to speak first (HTTP) before it is served SMTP (its banner comes this much later)"),
	}
}
