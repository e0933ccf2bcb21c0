package state

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultProbeInterval is how often a degraded Fallback checks whether
// Redis answers again.
const DefaultProbeInterval = time.Second

// Remote is the shared store a Fallback puts first: Redis.
type Remote interface {
	Store
	// Ping checks that the store answers and takes writes, within its own
	// timeout.
	Ping(ctx context.Context) error
}

// FallbackConfig tunes a Fallback.
type FallbackConfig struct {
	// ProbeInterval: see DefaultProbeInterval.
	ProbeInterval time.Duration
	// Log gets one warning when Redis fails and one line when it is back.
	Log *slog.Logger
}

// Fallback is Redis with this process's memory behind it. While Redis
// answers, every operation goes to Redis. When an operation fails (an
// error or the call's timeout), it is answered from the local Memory
// instead, the store turns degraded (one warning in the log, Degraded
// reports true) and stops asking Redis; a background probe pings Redis every
// ProbeInterval and, once it answers, the shared state is used again.
//
// Degraded means fail open to per-process state, never closed: each replica
// keeps its own lockout and limits, as with --state memory, so an attacker
// gets at most one budget per replica, and no user is refused because Redis
// is down. What was counted locally during the outage stays local.
type Fallback struct {
	remote   Remote
	local    *Memory
	log      *slog.Logger
	interval time.Duration

	degraded atomic.Bool
	ctx      context.Context // cancelled by Close: stops the probe
	cancel   context.CancelFunc
	mu       sync.Mutex // orders starting a probe against Close
	probes   sync.WaitGroup
}

// NewFallback returns a Fallback over remote, answering from local while
// remote fails. It owns both: Close closes them.
func NewFallback(remote Remote, local *Memory, cfg FallbackConfig) *Fallback {
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = DefaultProbeInterval
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Fallback{remote: remote, local: local, log: cfg.Log, interval: cfg.ProbeInterval, ctx: ctx, cancel: cancel}
}

// Degraded reports whether operations are answered from local memory
// because Redis failed (the postern_state_degraded gauge).
func (f *Fallback) Degraded() bool { return f.degraded.Load() }

// Check pings Redis now (at start, so that an outage is logged before the
// first client meets it); a failure turns the store degraded like any
// operation's. It returns Redis's error for the caller to show.
func (f *Fallback) Check(ctx context.Context) error {
	err := f.remote.Ping(ctx)
	if err != nil {
		f.failed(ctx, "ping", err)
	}
	return err
}

// useRemote reports whether to ask Redis.
func (f *Fallback) useRemote() bool { return !f.degraded.Load() && f.ctx.Err() == nil }

// failed notes that Redis failed op. A caller's own cancellation is not
// Redis's fault and changes nothing; anything else turns the store
// degraded, and the first failure of an outage logs and starts the probe.
func (f *Fallback) failed(ctx context.Context, op string, err error) {
	if ctx.Err() != nil {
		return
	}
	if !f.degraded.CompareAndSwap(false, true) {
		return
	}
	f.log.Warn("state: redis failed, using this process's memory until it answers again",
		"op", op, "err", err)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ctx.Err() == nil { // not closed
		f.probes.Add(1)
		go f.probe()
	}
}

// probe pings Redis every interval until it answers (then the shared state
// is used again) or Close.
func (f *Fallback) probe() {
	defer f.probes.Done()
	tick := time.NewTicker(f.interval)
	defer tick.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-tick.C:
		}
		if err := f.remote.Ping(f.ctx); err != nil {
			continue
		}
		// Suspensions decided during the outage go to Redis before
		// it is used again (else the login could log in at once), and
		// once more after, for one decided meanwhile.
		if err := f.pushSuspensions(); err != nil {
			continue
		}
		f.degraded.Store(false)
		if err := f.pushSuspensions(); err != nil {
			f.failed(f.ctx, "suspend", err)
			return
		}
		f.log.Info("state: redis answers again, shared state in use")
		return
	}
}

// suspensionPusher is the Remote (Redis) that can take the suspensions
// made in memory during an outage.
type suspensionPusher interface {
	suspendIfNone(ctx context.Context, loginKey string, s Suspension) error
}

// pushSuspensions moves the suspensions in local memory to the remote
// store, where every replica sees them and `postern unsuspend` lifts them.
func (f *Fallback) pushSuspensions() error {
	p, ok := f.remote.(suspensionPusher)
	if !ok {
		return nil
	}
	for k, s := range f.local.suspensionsInForce() {
		if err := p.suspendIfNone(f.ctx, k, s); err != nil {
			return err
		}
		f.local.forgetSuspension(k, s)
	}
	return nil
}

// Add implements Store.
func (f *Fallback) Add(ctx context.Context, key string, limit int, window time.Duration) (int, bool, error) {
	if f.useRemote() {
		n, ok, err := f.remote.Add(ctx, key, limit, window)
		if err == nil {
			return n, ok, nil
		}
		f.failed(ctx, "add", err)
	}
	return f.local.Add(ctx, key, limit, window)
}

// Record implements Store.
func (f *Fallback) Record(ctx context.Context, key string, limit int, window time.Duration) (int, error) {
	if f.useRemote() {
		n, err := f.remote.Record(ctx, key, limit, window)
		if err == nil {
			return n, nil
		}
		f.failed(ctx, "record", err)
	}
	return f.local.Record(ctx, key, limit, window)
}

// RemoveNewest implements Store.
func (f *Fallback) RemoveNewest(ctx context.Context, key string) error {
	if f.useRemote() {
		err := f.remote.RemoveNewest(ctx, key)
		if err == nil {
			return nil
		}
		f.failed(ctx, "remove-newest", err)
	}
	return f.local.RemoveNewest(ctx, key)
}

// Count implements Store.
func (f *Fallback) Count(ctx context.Context, key string, window time.Duration) (int, error) {
	if f.useRemote() {
		n, err := f.remote.Count(ctx, key, window)
		if err == nil {
			return n, nil
		}
		f.failed(ctx, "count", err)
	}
	return f.local.Count(ctx, key, window)
}

// Clear implements Store.
func (f *Fallback) Clear(ctx context.Context, key string) error {
	if f.useRemote() {
		err := f.remote.Clear(ctx, key)
		if err == nil {
			return nil
		}
		f.failed(ctx, "clear", err)
	}
	return f.local.Clear(ctx, key)
}

// Once implements Store.
func (f *Fallback) Once(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if f.useRemote() {
		ok, err := f.remote.Once(ctx, key, ttl)
		if err == nil {
			return ok, nil
		}
		f.failed(ctx, "once", err)
	}
	return f.local.Once(ctx, key, ttl)
}

// Suspend implements Store.
func (f *Fallback) Suspend(ctx context.Context, login string, s Suspension) error {
	if f.useRemote() {
		err := f.remote.Suspend(ctx, login, s)
		if err == nil {
			return nil
		}
		f.failed(ctx, "suspend", err)
	}
	return f.local.Suspend(ctx, login, s)
}

// Suspended implements Store.
func (f *Fallback) Suspended(ctx context.Context, login string) (Suspension, bool, error) {
	if f.useRemote() {
		s, ok, err := f.remote.Suspended(ctx, login)
		if err == nil {
			return s, ok, nil
		}
		f.failed(ctx, "suspended", err)
	}
	return f.local.Suspended(ctx, login)
}

// Unsuspend implements Store.
func (f *Fallback) Unsuspend(ctx context.Context, login string) (bool, error) {
	if f.useRemote() {
		ok, err := f.remote.Unsuspend(ctx, login)
		if err == nil {
			return ok, nil
		}
		f.failed(ctx, "unsuspend", err)
	}
	return f.local.Unsuspend(ctx, login)
}

// Close stops the probe and closes both stores.
func (f *Fallback) Close() error {
	f.mu.Lock()
	f.cancel()
	f.mu.Unlock()
	f.probes.Wait()
	f.local.Close()
	return f.remote.Close()
}
