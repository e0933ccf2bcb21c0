package state

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// policyNoEviction is the only maxmemory-policy under which Redis never
// drops a key of Postern's: every one but the marker has a TTL, so the volatile-*
// policies may evict them as well as the allkeys-* ones.
const policyNoEviction = "noeviction"

// Eviction is what Redis says about dropping keys to stay under maxmemory.
type Eviction struct {
	Policy  string // maxmemory-policy
	Evicted int64  // evicted_keys since Redis started (INFO stats)
	// Source is where Policy was read: "config" (CONFIG GET) or "info"
	// (INFO memory, where CONFIG is renamed away or not allowed).
	Source string
}

// Eviction reads Redis's eviction policy and how many keys it has evicted.
func (r *Redis) Eviction(ctx context.Context) (Eviction, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	var ev Eviction
	// CONFIG is often renamed away (rename-command CONFIG "") or denied by
	// an ACL on a shared Redis; INFO memory says the policy too.
	if cfg, err := r.client.ConfigGet(ctx, "maxmemory-policy").Result(); err == nil && cfg["maxmemory-policy"] != "" {
		ev.Policy, ev.Source = cfg["maxmemory-policy"], "config"
	} else {
		mem, err := r.client.Info(ctx, "memory").Result()
		if err != nil {
			return ev, fmt.Errorf("state: redis INFO memory: %w", err)
		}
		p, ok := infoField(mem, "maxmemory_policy")
		if !ok || p == "" {
			return ev, fmt.Errorf("state: redis says no maxmemory_policy in INFO memory")
		}
		ev.Policy, ev.Source = p, "info"
	}
	stats, err := r.client.Info(ctx, "stats").Result()
	if err != nil {
		return ev, fmt.Errorf("state: redis INFO stats: %w", err)
	}
	v, ok := infoField(stats, "evicted_keys")
	if !ok {
		return ev, fmt.Errorf("state: redis says no evicted_keys in INFO stats")
	}
	if ev.Evicted, err = strconv.ParseInt(v, 10, 64); err != nil {
		return ev, fmt.Errorf("state: redis evicted_keys %q: %w", v, err)
	}
	return ev, nil
}

// infoField returns the value of name in the text of INFO: lines
// "name:value" (CRLF or LF), "# Section" headers.
func infoField(info, name string) (string, bool) {
	for line := range strings.Lines(info) {
		k, v, ok := strings.Cut(strings.TrimRight(line, "\r\n"), ":")
		if ok && k == name {
			return v, true
		}
	}
	return "", false
}

// EvictionSource is what an EvictionWatch reads: Redis.
type EvictionSource interface {
	Eviction(ctx context.Context) (Eviction, error)
}

// EvictionWatchConfig tunes an EvictionWatch.
type EvictionWatchConfig struct {
	// Interval: see DefaultEvictionCheckInterval.
	Interval time.Duration
	Log      *slog.Logger
}

// EvictionWatch checks that Redis will not evict Postern's keys. A Redis
// under maxmemory with any policy but noeviction drops keys when memory is
// short (another application filling it is enough): lockout counters,
// sending limits and suspensions then vanish, and nothing else would say
// so. At start and every Interval it reads the policy: anything but
// noeviction gets a warning naming it (each check, until it is fixed) and
// the postern_state_redis_evicting gauge (Evicting); keys Redis has
// evicted since the last check are logged too.
type EvictionWatch struct {
	src      EvictionSource
	log      *slog.Logger
	interval time.Duration

	evicting atomic.Bool
	policy   string // the last policy read, "" before the first
	evicted  int64  // evicted_keys at the last check, -1 before the first
}

// NewEvictionWatch returns a watch over src; Run starts it.
func NewEvictionWatch(src EvictionSource, cfg EvictionWatchConfig) *EvictionWatch {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultEvictionCheckInterval
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &EvictionWatch{src: src, log: cfg.Log, interval: cfg.Interval, evicted: -1}
}

// Evicting reports whether Redis's policy, when last read, lets it evict
// Postern's keys.
func (w *EvictionWatch) Evicting() bool { return w.evicting.Load() }

// Run checks now and then every interval until ctx is done.
func (w *EvictionWatch) Run(ctx context.Context) {
	tick := time.NewTicker(w.interval)
	defer tick.Stop()
	for {
		w.check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// check reads Redis once. A Redis that does not answer is Fallback's to
// report; the gauge then keeps what was last read.
func (w *EvictionWatch) check(ctx context.Context) {
	ev, err := w.src.Eviction(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Debug("state: could not read redis's eviction policy", "err", err)
		}
		return
	}
	w.evicting.Store(ev.Policy != policyNoEviction)
	if ev.Policy != policyNoEviction {
		w.log.Warn("state: redis may evict postern's keys (lockout, sending limits, suspensions); it needs maxmemory-policy noeviction, or a Redis of its own",
			"policy", ev.Policy, "read_from", ev.Source)
	} else if ev.Policy != w.policy {
		w.log.Info("state: redis eviction policy", "policy", ev.Policy, "read_from", ev.Source)
	}
	w.policy = ev.Policy
	switch {
	case w.evicted < 0 && ev.Evicted > 0:
		w.log.Warn("state: redis has evicted keys since it started", "evicted_keys", ev.Evicted, "policy", ev.Policy)
	case w.evicted >= 0 && ev.Evicted > w.evicted:
		w.log.Warn("state: redis evicted keys", "evicted_keys", ev.Evicted, "new", ev.Evicted-w.evicted, "policy", ev.Policy)
	}
	// A restarted Redis counts from 0 again: that is the new baseline.
	w.evicted = ev.Evicted
}
