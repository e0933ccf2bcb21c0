package certs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/acme/autocert"
)

// Defaults of RedisCacheConfig.
const (
	// DefaultACMELockTTL is how long an order lock outlives the replica
	// holding it: the holder extends it every third of this, so a replica
	// that died frees the name this long after.
	DefaultACMELockTTL = 30 * time.Second
	// DefaultACMELockWait bounds how long a replica waits for another
	// one's order before it gives up (and retries later).
	DefaultACMELockWait = 10 * time.Minute
	// DefaultACMELeaseMax bounds how long one replica holds a name's lock
	// (an order that failed leaves it held until then): autocert gives a
	// first issuance 5 minutes; orders take seconds.
	DefaultACMELeaseMax = 6 * time.Minute
	// DefaultACMERedisTimeout bounds each Redis call of the cache.
	DefaultACMERedisTimeout = 5 * time.Second
)

// acmeKeyPrefix and acmeLockPrefix namespace the cache's Redis keys beside
// --state's counters ("postern:").
const (
	acmeKeyPrefix  = "postern:acme:"
	acmeLockPrefix = "postern:acme-lock:"
)

// challengeTTL is how long an ACME challenge entry (HTTP-01 token,
// TLS-ALPN-01 certificate) stays in Redis: autocert deletes it after the
// validation, and a replica that died in between must not leave it forever.
const challengeTTL = time.Hour

// lockPoll is how often a waiting replica tries for the lock again.
const lockPoll = 250 * time.Millisecond

// RedisCacheConfig configures a RedisCache.
type RedisCacheConfig struct {
	// Client is --state's Redis.
	Client redis.UniversalClient
	// Key is the AES-256 key every entry is sealed with
	// (--acme-cache-key-file, ParseACMECacheKey); the same on every replica.
	Key []byte
	// LocalDir keeps this replica's copy of every entry but the
	// challenges (--acme-cache-local), sealed as in Redis, served while
	// Redis is unreachable; "" keeps none.
	LocalDir string
	// RenewBefore is Config.ACMERenewBefore: the cache must know when
	// autocert is about to renew, to hold the name's lock across it.
	RenewBefore time.Duration
	// LockTTL, LockWait, LeaseMax and Timeout default to
	// DefaultACMELockTTL, DefaultACMELockWait, DefaultACMELeaseMax and
	// DefaultACMERedisTimeout.
	LockTTL, LockWait, LeaseMax, Timeout time.Duration
	Log                                  *slog.Logger
	// Now is the clock for renewal decisions; nil is time.Now.
	Now func() time.Time
}

// RedisCache is an autocert.Cache shared by every replica through Redis
// (--acme-cache redis), so that three replicas order a certificate once,
// not three times.
//
//   - Every entry is sealed (AES-256-GCM, the entry's name as additional
//     data): Redis never holds a private key in clear, and a value changed
//     or moved from another name is refused, not served.
//   - One replica orders a name at a time. Reading a certificate entry
//     takes the name's lock (SET NX PX with a random token, extended while
//     held, deleted only by its holder); when the entry is missing or due
//     for renewal, the lock stays held until autocert writes the new
//     certificate (Put) — or gives up — so the other replicas, waiting for
//     the lock, then read the new certificate instead of ordering their
//     own. autocert reads the entry before ordering in both of its paths
//     (first issuance and its renewal timer), which is what makes this
//     work.
//   - Every write also goes to LocalDir; while Redis is unreachable the
//     local copy answers (and orders go on without the lock), and the log
//     and Degraded say so.
type RedisCache struct {
	cfg   RedisCacheConfig
	log   *slog.Logger
	seal  *sealer
	local autocert.DirCache // "" when there is no local copy

	mu     sync.Mutex
	leases map[string]*lease // name → this replica's lock on it

	degraded atomic.Bool
}

// NewRedisCache checks cfg and returns the cache; it does not connect (a
// Redis that is down at start is served around, from the local copy).
func NewRedisCache(cfg RedisCacheConfig) (*RedisCache, error) {
	if cfg.Client == nil {
		return nil, errors.New("certs: the ACME Redis cache needs a Redis client (--state redis://…)")
	}
	s, err := newSealer(cfg.Key)
	if err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LockTTL <= 0 {
		cfg.LockTTL = DefaultACMELockTTL
	}
	if cfg.LockWait <= 0 {
		cfg.LockWait = DefaultACMELockWait
	}
	if cfg.LeaseMax <= 0 {
		cfg.LeaseMax = DefaultACMELeaseMax
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultACMERedisTimeout
	}
	return &RedisCache{
		cfg:    cfg,
		log:    cfg.Log,
		seal:   s,
		local:  autocert.DirCache(cfg.LocalDir),
		leases: map[string]*lease{},
	}, nil
}

// Degraded reports whether the last Redis call failed: the replica serves
// its local copy and orders without the lock.
func (c *RedisCache) Degraded() bool { return c.degraded.Load() }

// isCertEntry reports whether autocert's name is a certificate (the domain,
// or domain+rsa), the entries whose reading may lead to an order. The
// account key and the challenges are not.
func isCertEntry(name string) bool {
	return name != "acme_account+key" && name != "acme_account.key" && !isChallengeEntry(name)
}

func isChallengeEntry(name string) bool {
	return strings.HasSuffix(name, "+http-01") || strings.HasSuffix(name, "+token")
}

// Get returns the entry name, ErrCacheMiss when there is none, or an error
// (an entry that fails authentication among them: autocert then neither
// serves nor orders). For a certificate it first takes the name's lock,
// waiting while another replica holds it, and keeps it unless the entry is
// a certificate autocert will use as it is.
func (c *RedisCache) Get(ctx context.Context, name string) ([]byte, error) {
	if !isCertEntry(name) {
		return c.read(ctx, name)
	}
	if err := c.acquire(ctx, name); err != nil {
		return nil, err
	}
	data, err := c.read(ctx, name)
	if err == nil && c.fresh(data) {
		c.release(name)
	}
	return data, err
}

// Put seals data and stores it under name in Redis and in the local copy,
// then releases the name's lock if this replica holds it. A Redis failure
// is not an error when the local copy was written: the certificate is
// kept, and the other replicas will order their own.
func (c *RedisCache) Put(ctx context.Context, name string, data []byte) error {
	defer c.releaseAll(name)
	sealed, err := c.seal.seal(name, data)
	if err != nil {
		return err
	}
	var localErr error
	wroteLocal := false
	if c.cfg.LocalDir != "" && !isChallengeEntry(name) {
		if localErr = c.local.Put(ctx, name, sealed); localErr != nil {
			c.log.Warn("certs: ACME cache: writing the local copy failed", "name", name, "err", localErr)
		} else {
			wroteLocal = true
		}
	}
	ttl := time.Duration(0)
	if isChallengeEntry(name) {
		ttl = challengeTTL
	}
	rctx, cancel := c.op(ctx)
	defer cancel()
	if err := c.cfg.Client.Set(rctx, acmeKeyPrefix+name, sealed, ttl).Err(); err != nil {
		c.redisFailed(err)
		if !wroteLocal {
			return fmt.Errorf("certs: ACME cache: storing %s: %w", name, errors.Join(err, localErr))
		}
		c.log.Warn("certs: ACME cache: Redis unreachable, entry kept in the local copy only", "name", name, "err", err)
		return nil
	}
	c.redisAnswered()
	return nil
}

// Delete removes name from Redis and the local copy.
func (c *RedisCache) Delete(ctx context.Context, name string) error {
	defer c.releaseAll(name)
	var localErr error
	if c.cfg.LocalDir != "" && !isChallengeEntry(name) {
		localErr = c.local.Delete(ctx, name)
	}
	rctx, cancel := c.op(ctx)
	defer cancel()
	if err := c.cfg.Client.Del(rctx, acmeKeyPrefix+name).Err(); err != nil {
		c.redisFailed(err)
		return fmt.Errorf("certs: ACME cache: deleting %s: %w", name, errors.Join(err, localErr))
	}
	c.redisAnswered()
	return localErr
}

// read returns the opened entry from Redis, and keeps the local copy equal
// to it; when Redis is unreachable, or has lost the entry (restarted
// empty), the local copy's.
func (c *RedisCache) read(ctx context.Context, name string) ([]byte, error) {
	return c.fetch(ctx, name, true)
}

// peek is read without touching the local copy, for check-config (which
// may run as another user than serve, and must not leave files that user
// owns in the directory).
func (c *RedisCache) peek(ctx context.Context, name string) ([]byte, error) {
	return c.fetch(ctx, name, false)
}

func (c *RedisCache) fetch(ctx context.Context, name string, mirror bool) ([]byte, error) {
	rctx, cancel := c.op(ctx)
	defer cancel()
	sealed, err := c.cfg.Client.Get(rctx, acmeKeyPrefix+name).Bytes()
	switch {
	case err == nil:
		c.redisAnswered()
		data, err := c.seal.open(name, sealed)
		if err != nil {
			c.log.Error("certs: ACME cache: entry in Redis refused", "name", name, "key", acmeKeyPrefix+name, "err", err)
			return nil, err
		}
		if mirror {
			c.mirror(ctx, name, sealed)
		}
		return data, nil
	case errors.Is(err, redis.Nil):
		c.redisAnswered()
		data, err := c.readLocal(ctx, name)
		if err == nil {
			c.log.Warn("certs: ACME cache: entry missing in Redis, using the local copy", "name", name)
		}
		return data, err
	default:
		c.redisFailed(err)
		return c.readLocal(ctx, name)
	}
}

// mirror keeps the local copy equal to what this replica read from Redis
// (an order by another replica reaches it this way), so that it has the
// certificate it serves when Redis is down at its next start.
func (c *RedisCache) mirror(ctx context.Context, name string, sealed []byte) {
	if c.cfg.LocalDir == "" || isChallengeEntry(name) {
		return
	}
	if old, err := c.local.Get(ctx, name); err == nil && bytes.Equal(old, sealed) {
		return
	}
	if err := c.local.Put(ctx, name, sealed); err != nil {
		c.log.Warn("certs: ACME cache: writing the local copy failed", "name", name, "err", err)
	}
}

// readLocal returns the opened local copy of name, or ErrCacheMiss.
func (c *RedisCache) readLocal(ctx context.Context, name string) ([]byte, error) {
	if c.cfg.LocalDir == "" || isChallengeEntry(name) {
		return nil, autocert.ErrCacheMiss
	}
	sealed, err := c.local.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	data, err := c.seal.open(name, sealed)
	if err != nil {
		c.log.Error("certs: ACME cache: local copy refused", "name", name, "dir", c.cfg.LocalDir, "err", err)
		return nil, err
	}
	return data, nil
}

// fresh reports whether data is a certificate autocert will take as it is,
// without ordering: valid for longer than autocert's renewal threshold
// (RenewBefore capped at 30 days, else a third of the lifetime; autocert
// only adds a delay to it).
func (c *RedisCache) fresh(data []byte) bool {
	cert, err := parseCachedCert(data)
	if err != nil {
		return false
	}
	leaf := cert.Leaf
	threshold := min(leaf.NotAfter.Sub(leaf.NotBefore)/3, 30*24*time.Hour)
	if c.cfg.RenewBefore > 0 {
		threshold = min(c.cfg.RenewBefore, 30*24*time.Hour)
	}
	return c.cfg.Now().Before(leaf.NotAfter.Add(-threshold))
}

func (c *RedisCache) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cfg.Timeout)
}

// redisFailed records a failed Redis call, logging the change of state.
func (c *RedisCache) redisFailed(err error) {
	if !c.degraded.Swap(true) {
		c.log.Error("certs: ACME cache: Redis unreachable: serving this replica's local copy, ordering without the lock", "local", c.cfg.LocalDir, "err", err)
	}
}

// redisAnswered records a Redis reply, logging the recovery.
func (c *RedisCache) redisAnswered() {
	if c.degraded.Swap(false) {
		c.log.Info("certs: ACME cache: Redis reachable again")
	}
}
