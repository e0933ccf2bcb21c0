package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/sync/singleflight"
)

// Cache remembers successful verifications of its next Authenticator for a
// TTL, so a client that reconnects every minute does not pay for a bcrypt or
// a Dovecot/LDAP round trip each time. Safe for concurrent use.
//
// Entries are keyed by HMAC-SHA256(login NUL password) under a random key
// made in NewCache: the cache never holds the password or an unkeyed hash of
// it, so a memory dump gives no offline-guessable verifier (the key is gone
// with the process). Failures are never cached: a wrong password always goes
// to the backend, and a backend that was down is asked again next time.
//
// The key is the login as the client typed it, not the account's canonical
// identity (Result.Login): the identity is only known after a verification,
// and a cache that mapped spellings to accounts would answer a guess on one
// spelling with a success verified for another. So each spelling is
// verified once on its own; the cached Result carries the canonical
// identity, and everything after the cache (limits, suspension, login
// delay, logs) keys on that.
type Cache struct {
	next    Authenticator
	hmacKey [32]byte
	lru     *expirable.LRU[[sha256.Size]byte, Result] // nil: pass-through

	// inflight merges simultaneous misses for the same credentials (fifty
	// phones of one user reconnecting after a restart cost one bcrypt).
	inflight singleflight.Group
	waiting  atomic.Int32 // requests waiting on a verification now
}

// NewCache wraps next. ttl 0 (or less) makes the cache a pass-through; size
// bounds the number of entries (DefaultCacheSize if 0 or less).
func NewCache(next Authenticator, ttl time.Duration, size int) *Cache {
	c := &Cache{next: next}
	if ttl <= 0 {
		return c
	}
	if size <= 0 {
		size = DefaultCacheSize
	}
	// crypto/rand.Read never returns an error (it crashes the program if
	// the system's randomness fails), so there is nothing to handle.
	_, _ = rand.Read(c.hmacKey[:])
	c.lru = expirable.NewLRU[[sha256.Size]byte, Result](size, nil, ttl)
	return c
}

// Authenticate answers from the cache when these exact credentials succeeded
// within the TTL, and asks the next Authenticator otherwise.
func (c *Cache) Authenticate(ctx context.Context, req Request) (Result, error) {
	// A login with a NUL could collide with another login+password split
	// (see key); SASL PLAIN cannot carry one anyway, so just do not cache.
	if c.lru == nil || strings.ContainsRune(req.Login, 0) {
		return c.next.Authenticate(ctx, req)
	}
	key := c.key(req.Login, req.Password)
	if res, ok := c.lru.Get(key); ok {
		return cloneResult(res), nil
	}
	// The first request runs the verification under its own context;
	// everyone with the same credentials meanwhile shares its outcome, but
	// stops waiting when their own context ends.
	ch := c.inflight.DoChan(string(key[:]), func() (any, error) {
		res, err := c.next.Authenticate(ctx, req)
		if err == nil {
			c.lru.Add(key, cloneResult(res))
		}
		return res, err
	})
	c.waiting.Add(1)
	defer c.waiting.Add(-1)
	select {
	case r := <-ch:
		res, _ := r.Val.(Result)
		return cloneResult(res), r.Err
	case <-ctx.Done():
		return Result{}, errors.Join(ErrUnavailable, ctx.Err())
	}
}

// Purge forgets every entry; call it on reload, when passwords may have
// changed or users been removed.
func (c *Cache) Purge() {
	if c.lru != nil {
		c.lru.Purge()
	}
}

// Len returns the number of cached successes (for metrics and tests).
func (c *Cache) Len() int {
	if c.lru == nil {
		return 0
	}
	return c.lru.Len()
}

func (c *Cache) key(login, password string) [sha256.Size]byte {
	m := hmac.New(sha256.New, c.hmacKey[:])
	m.Write([]byte(login))
	// The NUL keeps ("ab","c") and ("a","bc") apart.
	m.Write([]byte{0}) // with no NUL in login (checked above), unambiguous
	m.Write([]byte(password))
	var k [sha256.Size]byte
	m.Sum(k[:0])
	return k
}

// cloneResult keeps callers from changing a cached slice.
func cloneResult(r Result) Result {
	r.Names = slices.Clone(r.Names)
	r.Addresses = slices.Clone(r.Addresses)
	return r
}
