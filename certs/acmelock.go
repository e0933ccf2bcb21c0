package certs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// releaseScript deletes the lock KEYS[1] only if it still holds this
// holder's token ARGV[1]: a holder whose lock expired and was taken by
// another replica must not free that replica's lock.
var releaseScript = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// extendScript sets the lock KEYS[1] to expire in ARGV[2] ms, only if it
// still holds the token ARGV[1]. Returns 1 if extended, 0 if the lock was
// lost.
var extendScript = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`)

// lease is this replica's hold on one name's lock, kept alive by keep until
// stop is closed, the lock is lost, or LeaseMax passes. holds counts the
// callers in this process relying on it (acquire and release in pairs; a
// Put ends them all).
type lease struct {
	holds int // guarded by RedisCache.mu
	token string
	stop  chan struct{}
	done  chan struct{}
}

// acquire takes name's lock, waiting (up to LockWait, or ctx) while another
// replica holds it. When this replica holds it already, that is one more
// hold on the same lease. When Redis cannot be
// asked it returns nil without a lock: a replica alone must still get its
// certificates.
func (c *RedisCache) acquire(ctx context.Context, name string) error {
	c.mu.Lock()
	if l := c.leases[name]; l != nil {
		l.holds++
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("certs: ACME lock token: %w", err)
	}
	token := hex.EncodeToString(b[:])
	key := acmeLockPrefix + name
	deadline := time.Now().Add(c.cfg.LockWait)
	waiting := false
	for {
		rctx, cancel := c.op(ctx)
		ok, err := c.cfg.Client.SetNX(rctx, key, token, c.cfg.LockTTL).Result()
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("certs: waiting for the ACME lock on %s: %w", name, ctx.Err())
			}
			c.redisFailed(err)
			c.log.Warn("certs: ACME lock unavailable (Redis unreachable): going on without it", "name", name)
			return nil
		}
		c.redisAnswered()
		if ok {
			break
		}
		if !waiting {
			waiting = true
			c.log.Info("certs: another replica holds the ACME lock; waiting for its certificate", "name", name)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("certs: the ACME lock on %s is still held by another replica after %v", name, c.cfg.LockWait)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("certs: waiting for the ACME lock on %s: %w", name, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
	l := &lease{holds: 1, token: token, stop: make(chan struct{}), done: make(chan struct{})}
	c.mu.Lock()
	c.leases[name] = l
	c.mu.Unlock()
	go c.keep(name, l)
	return nil
}

// keep extends l's lock every third of LockTTL until it is released, lost
// or held for LeaseMax; then it deletes the lock if it is still l's.
func (c *RedisCache) keep(name string, l *lease) {
	defer close(l.done)
	key := acmeLockPrefix + name
	tick := time.NewTicker(c.cfg.LockTTL / 3)
	defer tick.Stop()
	limit := time.NewTimer(c.cfg.LeaseMax)
	defer limit.Stop()
	for {
		select {
		case <-l.stop:
			c.unlock(key, l.token)
			return
		case <-limit.C:
			c.log.Warn("certs: ACME lock held too long without a new certificate; released", "name", name, "held", c.cfg.LeaseMax)
			c.forget(name, l)
			c.unlock(key, l.token)
			return
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
			n, err := extendScript.Run(ctx, c.cfg.Client, []string{key}, l.token, c.cfg.LockTTL.Milliseconds()).Int()
			cancel()
			if err == nil && n == 0 {
				c.log.Warn("certs: ACME lock lost (it expired); another replica may order too", "name", name)
				c.forget(name, l)
				return
			}
		}
	}
}

// unlock deletes the lock key if it still holds token.
func (c *RedisCache) unlock(key, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	if err := releaseScript.Run(ctx, c.cfg.Client, []string{key}, token).Err(); err != nil {
		// It expires by itself within LockTTL.
		c.log.Warn("certs: releasing the ACME lock failed", "key", key, "err", err)
	}
}

// forget drops l from the leases if it is still name's.
func (c *RedisCache) forget(name string, l *lease) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leases[name] == l {
		delete(c.leases, name)
	}
}

// release ends one hold on name's lease, and the lease with the last one.
func (c *RedisCache) release(name string) {
	c.mu.Lock()
	l := c.leases[name]
	if l != nil {
		l.holds--
		if l.holds > 0 {
			l = nil
		} else {
			delete(c.leases, name)
		}
	}
	c.mu.Unlock()
	c.end(l)
}

// releaseAll ends name's lease whatever its holds: the new certificate is
// written (Put), or the order failed.
func (c *RedisCache) releaseAll(name string) {
	c.mu.Lock()
	l := c.leases[name]
	delete(c.leases, name)
	c.mu.Unlock()
	c.end(l)
}

// end stops l's keeper, which deletes the lock; nil is a no-op.
func (c *RedisCache) end(l *lease) {
	if l != nil {
		close(l.stop)
		<-l.done
	}
}
