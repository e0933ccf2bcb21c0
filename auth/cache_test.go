package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestCacheRemembersSuccessOnly(t *testing.T) {
	next := &stubAuth{}
	c := NewCache(next, time.Minute, 10)
	ctx := context.Background()
	req := Request{Login: "alice", Password: "secret"}

	for range 3 {
		res, err := c.Authenticate(ctx, req)
		if err != nil || res.Login != "alice" {
			t.Fatalf("got %+v, %v", res, err)
		}
	}
	if n := next.calls.Load(); n != 1 {
		t.Errorf("backend called %d times for 3 identical successes, want 1", n)
	}

	// Another password for the same login is not answered from the cache.
	next.err = ErrInvalidCredentials
	if _, err := c.Authenticate(ctx, Request{Login: "alice", Password: "other"}); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("other password: %v", err)
	}
	// ("alic", "esecret") must not hit the ("alice", "secret") entry.
	if _, err := c.Authenticate(ctx, Request{Login: "alic", Password: "esecret"}); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("shifted login/password split hit the cache: %v", err)
	}

	// Failures are never cached: each goes to the backend.
	before := next.calls.Load()
	for range 3 {
		_, _ = c.Authenticate(ctx, Request{Login: "bob", Password: "x"})
	}
	if got := next.calls.Load() - before; got != 3 {
		t.Errorf("3 failures reached the backend %d times, want 3", got)
	}
	next.err = fmt.Errorf("down: %w", ErrUnavailable)
	_, _ = c.Authenticate(ctx, Request{Login: "bob", Password: "x"})
	next.err = nil
	before = next.calls.Load()
	if _, err := c.Authenticate(ctx, Request{Login: "bob", Password: "x"}); err != nil {
		t.Fatal(err)
	}
	if next.calls.Load() != before+1 {
		t.Error("an unavailable answer was cached")
	}

	// The cached answer still works after the backend starts failing; Purge
	// (reload) forgets it.
	next.err = ErrInvalidCredentials
	if _, err := c.Authenticate(ctx, req); err != nil {
		t.Fatalf("cached success: %v", err)
	}
	c.Purge()
	if _, err := c.Authenticate(ctx, req); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("after Purge: %v, want the backend's answer", err)
	}
}

func TestCacheTTLAndSize(t *testing.T) {
	next := &stubAuth{}
	c := NewCache(next, 50*time.Millisecond, 2)
	ctx := context.Background()
	_, _ = c.Authenticate(ctx, Request{Login: "a", Password: "p"})
	time.Sleep(150 * time.Millisecond)
	_, _ = c.Authenticate(ctx, Request{Login: "a", Password: "p"})
	if n := next.calls.Load(); n != 2 {
		t.Errorf("entry outlived its TTL: %d backend calls, want 2", n)
	}
	for i := range 5 {
		_, _ = c.Authenticate(ctx, Request{Login: fmt.Sprint(i), Password: "p"})
	}
	if c.Len() > 2 {
		t.Errorf("cache holds %d entries, bound is 2", c.Len())
	}
}

func TestCacheZeroTTLPassesThrough(t *testing.T) {
	next := &stubAuth{}
	c := NewCache(next, 0, 100)
	for range 3 {
		_, _ = c.Authenticate(context.Background(), Request{Login: "a", Password: "p"})
	}
	if n := next.calls.Load(); n != 3 || c.Len() != 0 {
		t.Errorf("ttl 0: %d backend calls, %d entries; want 3 and 0", n, c.Len())
	}
	c.Purge() // harmless
}

func TestCacheNeverStoresPassword(t *testing.T) {
	c := NewCache(&stubAuth{}, time.Minute, 10)
	password := "correct horse battery staple"
	_, _ = c.Authenticate(context.Background(), Request{Login: "alice", Password: password})
	keys := c.lru.Keys()
	if len(keys) != 1 {
		t.Fatalf("%d keys", len(keys))
	}
	raw := keys[0][:]
	if bytes.Contains(raw, []byte(password)) || bytes.Contains(raw, []byte("alice")) {
		t.Error("cache key contains the login or password")
	}
	// Keys depend on the per-process random HMAC key.
	other := NewCache(&stubAuth{}, time.Minute, 10)
	if other.key("alice", password) == c.key("alice", password) {
		t.Error("two caches derive the same key: the HMAC key is not random")
	}
}

func TestCacheReturnsCopies(t *testing.T) {
	c := NewCache(&stubAuth{}, time.Minute, 10)
	req := Request{Login: "alice", Password: "p"}
	res, _ := c.Authenticate(context.Background(), req)
	res.Addresses[0] = "mallory@example.org"
	res2, _ := c.Authenticate(context.Background(), req)
	if !reflect.DeepEqual(res2.Addresses, []string{"alice"}) {
		t.Errorf("caller changed the cached entry: %v", res2.Addresses)
	}
}

func TestCacheConcurrent(t *testing.T) {
	c := NewCache(&stubAuth{}, time.Minute, 16)
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			for j := range 100 {
				req := Request{Login: fmt.Sprint(j % 20), Password: "p"}
				if res, err := c.Authenticate(context.Background(), req); err != nil || res.Login != req.Login {
					t.Errorf("worker %d: %+v, %v", i, res, err)
					return
				}
			}
			if i%8 == 0 {
				c.Purge()
			}
		})
	}
	wg.Wait()
}

// bcryptAuth is a one-user backend doing what the users file does for a
// bcrypt hash: one bcrypt comparison per request.
type bcryptAuth struct {
	login string
	hash  []byte
}

func newBcryptAuth(tb testing.TB, login, password string) *bcryptAuth {
	hash, err := bcrypt.GenerateFromPassword([]byte(password), 10)
	if err != nil {
		tb.Fatal(err)
	}
	return &bcryptAuth{login: login, hash: hash}
}

func (b *bcryptAuth) Authenticate(_ context.Context, req Request) (Result, error) {
	if err := bcrypt.CompareHashAndPassword(b.hash, []byte(req.Password)); err != nil || req.Login != b.login {
		return Result{}, ErrInvalidCredentials
	}
	return Result{Login: b.login}, nil
}

func benchmarkAuth(b *testing.B, a Authenticator) {
	req := Request{Login: "alice@example.org", Password: "alice-secret"}
	ctx := context.Background()
	for b.Loop() {
		if _, err := a.Authenticate(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthCached: repeated AUTH of one user through the cache (bcrypt
// cost 10 behind it, paid once).
func BenchmarkAuthCached(b *testing.B) {
	benchmarkAuth(b, NewCache(newBcryptAuth(b, "alice@example.org", "alice-secret"), 5*time.Minute, 1024))
}

// BenchmarkAuthUncached: the same without the cache, a bcrypt per AUTH.
func BenchmarkAuthUncached(b *testing.B) {
	benchmarkAuth(b, newBcryptAuth(b, "alice@example.org", "alice-secret"))
}

// gateAuth blocks every verification until release is closed, and counts them.
type gateAuth struct {
	release chan struct{}
	err     error
	n       chan struct{} // one token per verification started
}

func (g *gateAuth) Authenticate(ctx context.Context, req Request) (Result, error) {
	g.n <- struct{}{}
	<-g.release
	if g.err != nil {
		return Result{}, g.err
	}
	return Result{Login: req.Login, Addresses: []string{req.Login}}, nil
}

func TestCacheMergesSimultaneousMisses(t *testing.T) {
	for _, backendErr := range []error{nil, ErrInvalidCredentials} {
		t.Run(fmt.Sprint(backendErr), func(t *testing.T) {
			g := &gateAuth{release: make(chan struct{}), err: backendErr, n: make(chan struct{}, 100)}
			c := NewCache(g, time.Minute, 10)
			var wg sync.WaitGroup
			errs := make(chan error, 20)
			for range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					res, err := c.Authenticate(context.Background(), Request{Login: "alice", Password: "pw"})
					if err == nil && res.Login != "alice" {
						err = fmt.Errorf("login %q", res.Login)
					}
					errs <- err
				}()
			}
			<-g.n // the first verification started
			// A different password is not merged with it.
			go c.Authenticate(context.Background(), Request{Login: "alice", Password: "other"})
			<-g.n
			// All 21 requests have joined a verification (20 the same one,
			// as the extra-verification check below shows) before it ends.
			for deadline := time.Now().Add(10 * time.Second); c.waiting.Load() != 21; {
				if time.Now().After(deadline) {
					t.Fatalf("%d requests wait for a verification, want 21", c.waiting.Load())
				}
				time.Sleep(time.Millisecond)
			}
			close(g.release)
			wg.Wait()
			close(errs)
			for err := range errs {
				if !errors.Is(err, backendErr) && !(backendErr == nil && err == nil) {
					t.Fatalf("got %v, want %v", err, backendErr)
				}
			}
			if extra := len(g.n); extra != 0 {
				t.Fatalf("%d extra verifications for identical simultaneous requests", extra)
			}
		})
	}
}

func TestCacheWaiterGivesUpWithItsContext(t *testing.T) {
	g := &gateAuth{release: make(chan struct{}), n: make(chan struct{}, 10)}
	defer close(g.release)
	c := NewCache(g, time.Minute, 10)
	go c.Authenticate(context.Background(), Request{Login: "alice", Password: "pw"})
	<-g.n
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Authenticate(ctx, Request{Login: "alice", Password: "pw"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("waiter got %v, want ErrUnavailable when its context ends", err)
	}
}
