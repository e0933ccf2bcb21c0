package serve

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern/postern/limits/state"
)

// StateMemory is the --state that keeps the counters in this process
// only.
const StateMemory = "memory"

// buildState returns the store --state names: nil for memory (each user of
// it then keeps its own bounded memory), or Redis behind a Fallback to this
// process's memory, with the watch on Redis's eviction policy (serve runs
// it). The gauges report degraded mode and eviction.
func buildState(sc StateConfig, log *slog.Logger) (*state.Fallback, *state.EvictionWatch, error) {
	spec := sc.Spec
	pwFile := sc.PasswordFile
	if spec == StateMemory {
		if pwFile != "" {
			return nil, nil, fmt.Errorf("--state-password-file needs --state redis://… or rediss://…")
		}
		return nil, nil, nil
	}
	u, err := url.Parse(spec)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		return nil, nil, fmt.Errorf("--state %q: want memory, redis://HOST:PORT/DB or rediss://HOST:PORT/DB", spec)
	}
	cfg := state.RedisConfig{URL: spec}
	if pwFile != "" {
		pw, err := os.ReadFile(pwFile)
		if err != nil {
			return nil, nil, fmt.Errorf("reading --state-password-file: %w", err)
		}
		cfg.Password = strings.TrimRight(string(pw), "\r\n")
	}
	r, err := state.NewRedis(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("--state: %w", err)
	}
	f := state.NewFallback(r, state.NewMemory(state.MemoryConfig{}), state.FallbackConfig{Log: log})
	log.Info("state: shared through redis", "redis", u.Redacted())
	return f, state.NewEvictionWatch(r, state.EvictionWatchConfig{Log: log}), nil
}

// newStateDegraded is the postern_state_degraded gauge: 1 while Redis
// fails and this process's memory answers.
func newStateDegraded(f *state.Fallback) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "postern_state_degraded",
		Help: "1 while the shared state (--state redis://) is unreachable and this process's memory answers instead; 0 otherwise.",
	}, func() float64 {
		if f != nil && f.Degraded() {
			return 1
		}
		return 0
	})
}

// newStateEvicting is the postern_state_redis_evicting gauge: 1 while
// Redis's maxmemory-policy lets it evict Postern's keys.
func newStateEvicting(w *state.EvictionWatch) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "postern_state_redis_evicting",
		Help: "1 while the Redis of --state has a maxmemory-policy other than noeviction (it may drop counters and suspensions); 0 otherwise.",
	}, func() float64 {
		if w != nil && w.Evicting() {
			return 1
		}
		return 0
	})
}

// checkState pings Redis once at start, so an outage shows in the log
// before the first client; serving goes on either way.
func checkState(ctx context.Context, f *state.Fallback) {
	if f != nil {
		_ = f.Check(ctx)
	}
}

// runUntilReturn runs fn in a goroutine with a context derived from ctx, and
// returns the function that cancels it and waits until fn has returned.
func runUntilReturn(ctx context.Context, fn func(context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}
