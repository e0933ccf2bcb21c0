package proxy

import "time"

// The defaults of the limits and timeouts, declared once: cmd/postern's
// flags show them (so `serve` and `demo` get them), and New and NewLockout
// fall back to those marked "zero value" when a Config leaves them unset.
// DefaultUpstreamTimeout is in upstream.go, next to its use.
const (
	DefaultMaxMessageBytes     = 52428800 // 50 MiB, advertised in SIZE
	DefaultMaxRecipients       = 100
	DefaultMaxAuthFailures     = 3 // per connection; zero value
	DefaultCommandTimeout      = 5 * time.Minute
	DefaultDataTimeout         = 10 * time.Minute
	DefaultAuthTimeout         = 30 * time.Second // one backend verification; zero value
	DefaultUpstreamDialTimeout = 10 * time.Second // zero value
	DefaultUpstreamPool        = 4
	DefaultMaxConnections      = 10000
	DefaultMaxConnectionsPerIP = 50
	DefaultLoginTimeout        = time.Minute
	DefaultLockoutMaxFailures  = 10               // per address within the window; zero value
	DefaultLockoutWindow       = 15 * time.Minute // zero value
)
