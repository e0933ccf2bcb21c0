package state

import "time"

// The stores' defaults, declared once: cmd/postern's flags and the configs'
// zero values use them.
const (
	// DefaultMemoryMaxKeys bounds the keys a Memory store tracks when
	// MemoryConfig.MaxKeys is 0.
	DefaultMemoryMaxKeys = 100_000
	// DefaultRedisTimeout bounds every Redis call (connecting, sending, waiting
	// for the reply): a hung or unreachable Redis never stalls a session longer
	// than this before Fallback answers from memory.
	DefaultRedisTimeout = 250 * time.Millisecond
	// DefaultProbeInterval is how often a degraded Fallback checks whether
	// Redis answers again.
	DefaultProbeInterval = time.Second
	// DefaultEvictionCheckInterval is how often an EvictionWatch reads Redis's
	// eviction policy and evicted-keys count again after the check at start.
	DefaultEvictionCheckInterval = time.Minute
)
