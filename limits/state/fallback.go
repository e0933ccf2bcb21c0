package state

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Remote is the shared store a Fallback puts first: Redis. Besides the
// Store, it tells the span of a counter's events (so that this process
// can go on counting from there) and takes the suspensions decided during
// an outage without overwriting newer ones.
type Remote interface {
	Store
	// Ping checks that the store answers and takes writes, within its own
	// timeout.
	Ping(ctx context.Context) error

	addSpan(ctx context.Context, key string, limit int, window time.Duration) (int, bool, span, error)
	recordSpan(ctx context.Context, key string, limit int, window time.Duration) (int, span, error)
	countSpan(ctx context.Context, key string, window time.Duration) (int, span, error)
	// suspendIfNone sets the suspension of the login whose LoginKey is
	// loginKey, unless the store holds one already.
	suspendIfNone(ctx context.Context, loginKey string, s Suspension) error
	// dataGeneration returns a value that changes when the store loses
	// its data (see markerKey).
	dataGeneration(ctx context.Context) (string, error)
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
// error, such as READONLY from a replica, or the call's timeout: a Redis
// stopped or hung), it is answered from the local Memory instead, the
// store turns degraded (one warning in the log, Degraded reports true) and
// stops asking Redis; a background probe pings Redis (with a write) every
// ProbeInterval and, once it answers, the shared state is used again.
//
// The local Memory is kept as a copy of what Redis last answered: each
// counter with the count (and the span of its events) Redis returned, each
// suspension this process made or looked up with its end (and a lookup
// that finds none drops the copy, so `postern unsuspend` anywhere lifts it
// here too). An outage therefore goes on from the last counts and
// suspensions this process knew: a suspended login stays suspended, a
// login at its limit stays there. What it never saw fails open, never
// closed: each replica then counts on its own, as with --state memory, so
// no user is refused because Redis is down. What was counted locally
// during the outage stays local, except the suspensions decided then,
// which go to Redis when it answers again, and, when Redis answers again
// without its data (another data generation: restarted without
// persistence), every suspension in force this process knew.
//
// The copy is taken after each answer, so operations racing at the moment
// Redis fails may leave it one event behind.
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

	pendingMu sync.Mutex
	pending   map[string]Suspension // by LoginKey: decided during an outage, not in Redis yet

	genMu      sync.Mutex
	generation string // Redis's dataGeneration when last read; "" before
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
	return &Fallback{remote: remote, local: local, log: cfg.Log, interval: cfg.ProbeInterval, ctx: ctx, cancel: cancel,
		pending: map[string]Suspension{}}
}

// Degraded reports whether operations are answered from local memory
// because Redis failed (the postern_state_degraded gauge).
func (f *Fallback) Degraded() bool { return f.degraded.Load() }

// Check pings Redis now (at start, so that an outage is logged before the
// first client meets it); a failure turns the store degraded like any
// operation's. It returns Redis's error for the caller to show.
func (f *Fallback) Check(ctx context.Context) error {
	err := f.remote.Ping(ctx)
	if err == nil {
		_, err = f.dataLost(ctx)
	}
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
		// A Redis back without its data (restarted without
		// persistence) would forget every suspension: those this
		// process knows go back to it, not only those it decided.
		lost, err := f.dataLost(f.ctx)
		if err != nil {
			continue
		}
		if lost {
			n := f.local.adoptSuspensions(f.pending, &f.pendingMu)
			f.log.Warn("state: redis answers again but lost its data (restarted without persistence, flushed or evicted); the suspensions this process knew are written back, counters start again",
				"suspensions", n)
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

// dataLost reads Redis's data generation and reports whether it changed
// since this process last read it: Redis lost its data meanwhile.
func (f *Fallback) dataLost(ctx context.Context) (bool, error) {
	g, err := f.remote.dataGeneration(ctx)
	if err != nil {
		return false, err
	}
	f.genMu.Lock()
	defer f.genMu.Unlock()
	lost := f.generation != "" && f.generation != g
	f.generation = g
	return lost, nil
}

// pushSuspensions moves the suspensions decided during an outage to the
// remote store, where every replica sees them and `postern unsuspend`
// lifts them; one Redis holds already (decided by another replica, or
// lifted and decided again) stands. Only those: a suspension this process
// merely copied may have been lifted in Redis meanwhile.
func (f *Fallback) pushSuspensions() error {
	now := time.Now()
	f.pendingMu.Lock()
	todo := make(map[string]Suspension, len(f.pending))
	for k, s := range f.pending {
		if s.Until.After(now) {
			todo[k] = s
		} else {
			delete(f.pending, k)
		}
	}
	f.pendingMu.Unlock()
	for k, s := range todo {
		if err := f.remote.suspendIfNone(f.ctx, k, s); err != nil {
			return err
		}
		f.pendingMu.Lock()
		if f.pending[k] == s {
			delete(f.pending, k)
		}
		f.pendingMu.Unlock()
	}
	return nil
}

// Add implements Store.
func (f *Fallback) Add(ctx context.Context, key string, limit int, window time.Duration) (int, bool, error) {
	if f.useRemote() {
		n, ok, sp, err := f.remote.addSpan(ctx, key, limit, window)
		if err == nil {
			f.local.mirror(key, n, sp)
			return n, ok, nil
		}
		f.failed(ctx, "add", err)
	}
	return f.local.Add(ctx, key, limit, window)
}

// Record implements Store.
func (f *Fallback) Record(ctx context.Context, key string, limit int, window time.Duration) (int, error) {
	if f.useRemote() {
		n, sp, err := f.remote.recordSpan(ctx, key, limit, window)
		if err == nil {
			f.local.mirror(key, n, sp)
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
			return f.local.RemoveNewest(ctx, key)
		}
		f.failed(ctx, "remove-newest", err)
	}
	return f.local.RemoveNewest(ctx, key)
}

// Count implements Store.
func (f *Fallback) Count(ctx context.Context, key string, window time.Duration) (int, error) {
	if f.useRemote() {
		n, sp, err := f.remote.countSpan(ctx, key, window)
		if err == nil {
			f.local.mirror(key, n, sp)
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
			return f.local.Clear(ctx, key)
		}
		f.failed(ctx, "clear", err)
	}
	return f.local.Clear(ctx, key)
}

// Once implements Store. Not copied: a Once only spares a second log line
// or alert, which an outage may repeat.
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
			return f.local.Suspend(ctx, login, s)
		}
		f.failed(ctx, "suspend", err)
	}
	f.pendingMu.Lock()
	f.pending[LoginKey(login)] = s
	f.pendingMu.Unlock()
	return f.local.Suspend(ctx, login, s)
}

// Suspended implements Store.
func (f *Fallback) Suspended(ctx context.Context, login string) (Suspension, bool, error) {
	if f.useRemote() {
		s, ok, err := f.remote.Suspended(ctx, login)
		if err == nil {
			if ok {
				err = f.local.Suspend(ctx, login, s)
			} else {
				_, err = f.local.Unsuspend(ctx, login)
			}
			return s, ok, err
		}
		f.failed(ctx, "suspended", err)
	}
	return f.local.Suspended(ctx, login)
}

// ErrUnsuspendOutage is Unsuspend's answer while Redis does not answer. A
// command that timed out may still run when a hung Redis resumes, so it
// does not claim that nothing was lifted either.
var ErrUnsuspendOutage = errors.New("redis does not answer, so the suspension may still hold (a lift in this instance's memory alone would come back from Redis and would not reach the other replicas); run unsuspend again once Redis answers")

// Unsuspend implements Store. It needs Redis: lifted only in this
// process's memory, a suspension held in Redis would come back when Redis
// answers again (and stays in force on the other replicas) while the one
// who lifted it was told it was lifted. So during an outage it lifts
// nothing and says so (ErrUnsuspendOutage). Once Redis has lifted it, a
// suspension this process decided during an outage and has not pushed yet
// is dropped too, so that the push cannot undo the lift.
func (f *Fallback) Unsuspend(ctx context.Context, login string) (bool, error) {
	if !f.useRemote() {
		return false, ErrUnsuspendOutage
	}
	ok, err := f.remote.Unsuspend(ctx, login)
	if err != nil {
		f.failed(ctx, "unsuspend", err)
		return false, fmt.Errorf("%w: %w", ErrUnsuspendOutage, err)
	}
	f.pendingMu.Lock()
	delete(f.pending, LoginKey(login))
	f.pendingMu.Unlock()
	_, err = f.local.Unsuspend(ctx, login)
	return ok, err
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
