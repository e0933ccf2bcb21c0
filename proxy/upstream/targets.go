package upstream

import (
	"sync/atomic"
	"time"
)

// Target is one configured upstream (one --upstream): how to reach it, its
// own pool of idle connections, and its passive health. A Target that
// failed (no connection, no greeting, a dropped or timed-out MAIL, 421) is
// skipped until its hold-down ends, as long as another one is healthy.
type Target struct {
	Config Config
	Pool   *Pool // nil: no pooling

	holdDown  time.Duration
	downUntil atomic.Int64 // unix nanoseconds; 0: healthy
}

// NewTarget is an upstream reached with cfg, skipped for holdDown after a
// failure (0: DefaultHoldDown).
func NewTarget(cfg Config, pool *Pool, holdDown time.Duration) *Target {
	if holdDown <= 0 {
		holdDown = DefaultHoldDown
	}
	return &Target{Config: cfg, Pool: pool, holdDown: holdDown}
}

// Addr is the address as configured: the metrics label and the log's
// upstream=.
func (t *Target) Addr() string { return t.Config.Addr }

// Failed marks t as failing now: skipped until the hold-down ends.
func (t *Target) Failed(now time.Time) {
	t.downUntil.Store(now.Add(t.holdDown).UnixNano())
}

// Answered marks t as healthy: it took a MAIL.
func (t *Target) Answered() { t.downUntil.Store(0) }

// Healthy reports whether t is not in its hold-down at now.
func (t *Target) Healthy(now time.Time) bool {
	return now.UnixNano() >= t.downUntil.Load()
}

// Targets are the configured upstreams in the order of configuration.
type Targets []*Target

// Order is the order in which a new transaction tries the upstreams: the
// healthy ones in the order of configuration (the first is the primary,
// the others are standbys), then those in their hold-down, as a last
// resort: when every upstream failed recently, trying them again is better
// than refusing all mail until a hold-down ends.
func (ts Targets) Order(now time.Time) Targets {
	order := make(Targets, 0, len(ts))
	for _, t := range ts {
		if t.Healthy(now) {
			order = append(order, t)
		}
	}
	for _, t := range ts {
		if !t.Healthy(now) {
			order = append(order, t)
		}
	}
	return order
}

// ClosePools quits every idle connection of every upstream (shutdown).
func (ts Targets) ClosePools() {
	for _, t := range ts {
		t.Pool.Close()
	}
}
