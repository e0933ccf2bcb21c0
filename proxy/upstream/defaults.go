package upstream

import "time"

// The defaults of the upstream side, declared once: cmd/postern's flags show
// them, and Dial falls back to those marked "zero value" when a Config
// leaves them unset.
const (
	// DefaultTimeout is --upstream-timeout's default: how long one read
	// from or write to the upstream may take (RFC 5321 §4.5.3.2 asks for
	// minutes per command; a minute is what a stalled MTA gets before the
	// client hears 4xx). Zero value.
	DefaultTimeout     = time.Minute
	DefaultDialTimeout = 10 * time.Second // zero value
	// PoolMaxIdle is how long a pooled upstream connection waits for the
	// next session before it is closed (no flag).
	PoolMaxIdle = 30 * time.Second
	// DefaultHoldDown is --upstream-hold-down's default: how long an
	// upstream that failed is skipped while another one is healthy. Long
	// enough that a dead upstream does not cost every new session a
	// connect timeout, short enough that a restarted one is back soon.
	// Zero value.
	DefaultHoldDown = 30 * time.Second
)
