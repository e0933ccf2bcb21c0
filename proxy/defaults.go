package proxy

import "time"

// The defaults of the SMTP side's limits and timeouts, declared once:
// cmd/postern's flags show them (so `serve` and `demo` get them), and New
// falls back to those marked "zero value" when a Config leaves them unset.
// The upstream's own are in proxy/upstream/defaults.go, the connection
// caps' and the shared listener's in proxy/listen/defaults.go.
const (
	DefaultMaxMessageBytes = 52428800 // 50 MiB, advertised in SIZE
	DefaultMaxRecipients   = 100
	DefaultMaxAuthFailures = 3 // per connection; zero value
	DefaultCommandTimeout  = 5 * time.Minute
	DefaultDataTimeout     = 10 * time.Minute
	DefaultAuthTimeout     = 30 * time.Second // one backend verification; zero value
	DefaultUpstreamPool    = 4
	DefaultLoginTimeout    = time.Minute
)

// RefusedConnectionTimeout bounds what is left of a connection refused by
// --max-connections or --max-connections-per-ip: on an implicit-TLS
// listener, the handshake and the 421 said over it (two round trips: ample
// even over a slow link). Until it closes, a refused connection holds one
// of --max-connections' slots; with the login timeout as its only bound, a
// client past its own per-address cap could hold refused connections by the
// thousand, never sending a ClientHello, and fill the total cap.
const RefusedConnectionTimeout = 2 * time.Second

// MaxCommandLineSkip bounds what is read of a command (or AUTH) line longer
// than go-smtp's line limit to find its end, within --command-timeout: the
// line is then answered "500 5.5.6 Line too long" and the session goes on,
// as with Postfix, which reads such a line to its end; the client, still
// writing, reads the reply instead of a reset. Longer or slower, the reply
// is the last. It is no flag: an attacker gets at most this many bytes read
// and dropped per line, into one small buffer, and three such lines per
// connection (the fourth protocol error ends it); no client writes a
// command line of even 1 MiB.
const MaxCommandLineSkip = 8 << 20
