package serve

import "time"

// The defaults of the settings this package owns, declared once:
// cmd/postern's flags show them. The other flags' defaults live with the
// package that uses them (proxy, proxy/upstream, limits, auth, policy,
// internal/autoconfig).
const (
	// DefaultShutdownTimeout is --shutdown-timeout's: the time given to
	// sessions in flight on SIGTERM before they are closed.
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultACMECacheDir is --acme-cache's and --acme-cache-local's.
	DefaultACMECacheDir = "/var/lib/postern/acme"
	// DefaultACMEDirectory is --acme-directory's: Let's Encrypt.
	DefaultACMEDirectory = "https://acme-v02.api.letsencrypt.org/directory"
	// DefaultACMEHTTP is --acme-http's: the HTTP-01 challenge listener.
	DefaultACMEHTTP = ":80"
	// DefaultAuthCacheTTL is --auth-cache-ttl's.
	DefaultAuthCacheTTL = 5 * time.Minute
	// DefaultState is --state's: StateMemory.
	DefaultState = StateMemory
	// DefaultUpstreamTLS is --upstream-tls's.
	DefaultUpstreamTLS = "none"
)

// DefaultSMTPListen is --listen's default: the submission ports 587
// (STARTTLS), 465 (implicit TLS) and 2525 (STARTTLS). It stays in force
// while --listen names no SMTP listener (see splitListen). A function: a
// slice cannot be a constant, and a variable could be changed.
func DefaultSMTPListen() []string {
	return []string{"starttls=:587", "tls=:465", "starttls=:2525"}
}

// Bounds of the HTTP servers (autoconfig, metrics): the documents are small
// and a client needs one request, so a slow or oversized peer is cut short.
// No flags.
const (
	httpReadHeaderTimeout = 10 * time.Second
	httpReadTimeout       = 30 * time.Second
	httpWriteTimeout      = 30 * time.Second
	httpIdleTimeout       = 60 * time.Second
	httpMaxHeaderBytes    = 16 << 10
	httpShutdownTimeout   = 5 * time.Second
	httpRefusalLogPeriod  = time.Minute // at most one refusal line per period
)

// readinessCacheFor is how long /readyz reuses its last upstream probe, so
// a scraping load balancer does not hammer the MTAs; readinessProbeTimeout
// bounds one probe of one upstream. No flags.
const (
	readinessCacheFor     = 2 * time.Second
	readinessProbeTimeout = 2 * time.Second
)

// FileHeadroom is the descriptors counted beyond the connections: the
// listeners, the control socket, files while they are read (users, sender
// map, certificates, limit file), and the connections to the auth backends
// (LDAP, Dovecot) and to Redis.
const FileHeadroom = 256
