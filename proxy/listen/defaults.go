package listen

import "time"

// The defaults of the connection caps, declared once: cmd/postern's flags
// show them.
const (
	// DefaultMaxConnections and DefaultMaxConnectionsPerIP cap the SMTP
	// listeners' open connections (--max-connections,
	// --max-connections-per-ip).
	DefaultMaxConnections      = 10000
	DefaultMaxConnectionsPerIP = 50
)

// The connection caps of cmd/postern's HTTP listeners (issue 18, hole 7): a
// budget apart from the SMTP listeners' one, so an HTTP flood cannot spend
// the descriptors SMTP needs.
const (
	// DefaultMaxHTTPConnections and DefaultMaxHTTPConnectionsPerIP are
	// the budget of --listen https= and the ACME HTTP-01 listener,
	// together: a client fetches a document or two, a CA validates from a
	// few addresses.
	DefaultMaxHTTPConnections      = 256
	DefaultMaxHTTPConnectionsPerIP = 16
	// MetricsMaxConnections caps the --metrics listener (Prometheus and
	// the probes) in a budget of its own, so that a flood of the public
	// HTTP listeners cannot fail the liveness probe.
	MetricsMaxConnections = 32
	// MetricsMaxConnectionsPerIP caps one client network (an address, an
	// IPv6 /64) on --metrics: without it one client holding 32 idle
	// connections failed every probe. The kubelet and Prometheus each
	// hold one or two at a time.
	MetricsMaxConnectionsPerIP = 8
)

// The shared listener (--listen tls+https=, issue 20).
const (
	// DefaultSharedFirstBytesWait is how long a client that offers no ALPN
	// and names no SMTP host is given to speak first before it is taken
	// for SMTP: an HTTP client sends its request at once (one round trip
	// after the handshake at most), an SMTP client waits for the banner,
	// which it then gets this much later.
	DefaultSharedFirstBytesWait = 300 * time.Millisecond
	// DefaultSharedHandshakeTimeout bounds a shared-listener connection
	// from accept to the end of its TLS handshake, while it is counted in
	// the HTTP budget: the 10 s net/http gives a handshake on https=.
	DefaultSharedHandshakeTimeout = 10 * time.Second
)

// MaxRefusedOpenPerNet bounds the connections refused by the caps (421
// Too many connections) that one client network (an address, an IPv6 /64)
// holds open while their refusal waits for them: on an implicit-TLS
// listener the 421 needs a handshake the client drives (for at most
// proxy.RefusedConnectionTimeout), and the connection holds a
// --max-connections slot meanwhile; unbounded, one address refused ~5,000
// times a second filled the default total. Past it, such a connection is
// closed at once, with no handshake and no reply (ConnLimits.HoldRefused,
// reason RefusedFlood). A 421 in plain text waits for nothing and is
// always said. A fixed number, not the per-address cap: a real client past its
// cap opens its connections one after another and each refusal is over in
// a round trip, so it still reads the 421 of the first few, and a plain
// close is temporary for it too (RFC 5321 §3.8); a flood gains only this
// many sockets over its 2×--max-connections-per-ip.
const MaxRefusedOpenPerNet = 8
