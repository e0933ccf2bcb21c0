package serve

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/postern/postern/certs"
)

// ACMECacheRedis is the --acme-cache value that shares the ACME cache
// through --state's Redis instead of a directory.
const ACMECacheRedis = "redis"

// buildACMECache returns the shared ACME cache for --acme-cache redis, nil
// for a directory. It needs --state redis://… (the same Redis, password
// and database) and --acme-cache-key-file.
func buildACMECache(cfg ACMEConfig, st StateConfig, log *slog.Logger) (*certs.RedisCache, error) {
	if cfg.Cache != ACMECacheRedis {
		return nil, nil
	}
	spec := st.Spec
	if !strings.HasPrefix(spec, "redis://") && !strings.HasPrefix(spec, "rediss://") {
		return nil, errors.New("--acme-cache redis needs --state redis://HOST:PORT/DB (or rediss://)")
	}
	keyFile := cfg.CacheKeyFile
	if keyFile == "" {
		return nil, errors.New("--acme-cache redis needs --acme-cache-key-file (32 bytes, or 64 hex digits: openssl rand -hex 32)")
	}
	raw, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("reading --acme-cache-key-file: %w", err)
	}
	key, err := certs.ParseACMECacheKey(raw)
	if err != nil {
		return nil, fmt.Errorf("--acme-cache-key-file %s: %w", keyFile, err)
	}
	opts, err := redis.ParseURL(spec)
	if err != nil {
		return nil, fmt.Errorf("--state: %w", err)
	}
	if pwFile := st.PasswordFile; pwFile != "" {
		pw, err := os.ReadFile(pwFile)
		if err != nil {
			return nil, fmt.Errorf("reading --state-password-file: %w", err)
		}
		opts.Password = strings.TrimRight(string(pw), "\r\n")
	}
	// ACME is off the sessions' path: a few seconds per call, not
	// --state's 250 ms.
	opts.DialTimeout = certs.DefaultACMERedisTimeout
	opts.ReadTimeout = certs.DefaultACMERedisTimeout
	opts.WriteTimeout = certs.DefaultACMERedisTimeout
	opts.PoolTimeout = certs.DefaultACMERedisTimeout
	opts.ContextTimeoutEnabled = true
	opts.ClientName = "postern-acme"
	opts.DisableIdentity = true // as --state: no CLIENT SETINFO
	return certs.NewRedisCache(certs.RedisCacheConfig{
		Client:   redis.NewClient(opts),
		Key:      key,
		LocalDir: cfg.CacheLocal,
		Log:      log,
	})
}

// newACMECacheDegraded is the postern_acme_cache_degraded gauge.
func newACMECacheDegraded(cache *certs.RedisCache) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "postern_acme_cache_degraded",
		Help: "1 while the shared ACME cache (--acme-cache redis) cannot reach Redis: this replica serves its local copy and orders without the lock; 0 otherwise.",
	}, func() float64 {
		if cache != nil && cache.Degraded() {
			return 1
		}
		return 0
	})
}
