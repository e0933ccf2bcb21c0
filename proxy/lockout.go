package proxy

import (
	"hash/maphash"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// LockoutConfig tunes the brute-force defences. Zero values take the
// defaults.
type LockoutConfig struct {
	// MaxFailures is how many failed AUTHs an address (IPv4) or network
	// (IPv6 /64) may have within Window; with that many it is Blocked until
	// the oldest of them leaves the window. Default DefaultLockoutMaxFailures.
	MaxFailures int
	// Window is the sliding window failures are counted in. Default
	// DefaultLockoutWindow.
	Window time.Duration
	// MaxKeys bounds the addresses, and separately the logins, tracked; the
	// least recently seen are forgotten first. Default 100_000.
	MaxKeys int
	// LoginDelayBase is the delay after one recent failure for a login; it
	// doubles with each further failure up to MaxLoginDelay. Defaults 250ms
	// and 15s (the 15 s cap is Dovecot's auth penalty cap too).
	LoginDelayBase time.Duration
	MaxLoginDelay  time.Duration
	// Now is the clock; tests inject a fake one. Default time.Now.
	Now func() time.Time
	// Log, if set, gets one line when an address becomes blocked (for
	// fail2ban).
	Log *slog.Logger
}

func (c LockoutConfig) withDefaults() LockoutConfig {
	if c.MaxFailures <= 0 {
		c.MaxFailures = DefaultLockoutMaxFailures
	}
	if c.Window <= 0 {
		c.Window = DefaultLockoutWindow
	}
	if c.MaxKeys <= 0 {
		c.MaxKeys = 100_000
	}
	if c.LoginDelayBase <= 0 {
		c.LoginDelayBase = 250 * time.Millisecond
	}
	if c.MaxLoginDelay <= 0 {
		c.MaxLoginDelay = 15 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// loginRingSize is how many recent failures per login need remembering: the
// count at which the doubling delay reaches its cap (7 with the defaults).
func (c LockoutConfig) loginRingSize() int {
	n := 1
	for d := c.LoginDelayBase; d < c.MaxLoginDelay; d *= 2 {
		n++
	}
	return n
}

// Lockout counts failed authentications per client address and per login.
//
// Addresses are blocked outright once they reach MaxFailures in Window: that
// is what stops one machine guessing. Logins are never blocked, only slowed
// (LoginDelay), because a lockout per login would let anyone lock the real
// owner out by guessing wrong on purpose; the owner, connecting from an
// address with no failures, always gets in.
//
// Memory is bounded: both tables are LRU caches of MaxKeys entries holding a
// fixed-size ring of timestamps, and logins are keyed by a 64-bit hash, not
// the (attacker-chosen, arbitrarily long) string. A flood of distinct
// addresses evicts older entries, which can forget a blocked address early;
// counting IPv6 per /64 keeps one host from producing such a flood cheaply.
// Safe for concurrent use.
type Lockout struct {
	cfg  LockoutConfig
	seed maphash.Seed // per Lockout, so login-hash collisions cannot be planned

	mu     sync.Mutex // guards the rings inside the caches
	addrs  *lru.Cache[netip.Prefix, *failureRing]
	logins *lru.Cache[uint64, *failureRing]
}

// NewLockout returns an empty Lockout.
func NewLockout(cfg LockoutConfig) *Lockout {
	cfg = cfg.withDefaults()
	// lru.New fails only for a size ≤ 0, which withDefaults rules out.
	addrs, _ := lru.New[netip.Prefix, *failureRing](cfg.MaxKeys)
	logins, _ := lru.New[uint64, *failureRing](cfg.MaxKeys)
	return &Lockout{cfg: cfg, seed: maphash.MakeSeed(), addrs: addrs, logins: logins}
}

// Blocked reports whether ip (its /64 for IPv6) has used up its MaxFailures
// attempts within the window (failures, and attempts reserved and still
// being verified); the caller answers 421 4.7.0 and closes.
func (l *Lockout) Blocked(ip netip.Addr) bool {
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.addrs.Peek(addrKey(ip))
	return ok && r.count(now, l.cfg.Window) >= l.cfg.MaxFailures
}

// Reserve counts one authentication attempt from ip before its credentials
// are verified, and reports false (counting nothing) when ip has no attempt
// left. Counting first is what makes parallel guesses count: if the count
// came only after the (slow) hash check, N connections sending wrong
// passwords at the same instant would all pass the check and all get a
// verdict. A reserved attempt therefore also bounds how many AUTHs of one
// address are verified at once: never more than MaxFailures. The caller
// ends each reserved attempt with Failure (wrong credentials) or Release.
func (l *Lockout) Reserve(ip netip.Addr) bool {
	now := l.cfg.Now()
	key := addrKey(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.addrs.Get(key)
	if !ok {
		r = newFailureRing(l.cfg.MaxFailures)
		l.addrs.Add(key, r)
	}
	if r.count(now, l.cfg.Window) >= l.cfg.MaxFailures {
		return false
	}
	r.add(now)
	return true
}

// Release gives back an attempt Reserve counted for ip: the credentials
// were right, or the backend could not check them. It drops the newest
// attempt on record, which is the reserved one or one made within the same
// verification time; an address is never left with fewer attempts than it
// made wrong guesses.
func (l *Lockout) Release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r, ok := l.addrs.Peek(addrKey(ip)); ok {
		r.removeNewest()
	}
}

// Failure records a failed authentication (wrong credentials only, never a
// backend that was unavailable) from ip for login that was not reserved:
// both the address and the login get a failure.
func (l *Lockout) Failure(ip netip.Addr, login string) {
	l.failure(ip, login, false)
}

// ReservedFailure records that an attempt Reserve counted for ip had wrong
// credentials: the address keeps the attempt, and login gets a failure
// (LoginDelay).
func (l *Lockout) ReservedFailure(ip netip.Addr, login string) {
	l.failure(ip, login, true)
}

func (l *Lockout) failure(ip netip.Addr, login string, reserved bool) {
	now := l.cfg.Now()
	key := addrKey(ip)
	l.mu.Lock()
	r, ok := l.addrs.Get(key)
	if !ok {
		r = newFailureRing(l.cfg.MaxFailures)
		l.addrs.Add(key, r)
	}
	if !reserved {
		r.add(now)
	}
	// One log line per block: when the address is full and has not been
	// reported within the window.
	justBlocked := r.count(now, l.cfg.Window) >= l.cfg.MaxFailures &&
		(r.reported == 0 || r.reported <= uint32(now.Add(-l.cfg.Window).Unix()))
	if justBlocked {
		r.reported = uint32(now.Unix())
	}

	lk := l.loginKey(login)
	lr, ok := l.logins.Get(lk)
	if !ok {
		lr = newFailureRing(l.cfg.loginRingSize())
		l.logins.Add(lk, lr)
	}
	lr.add(now)
	l.mu.Unlock()

	if justBlocked && l.cfg.Log != nil {
		l.cfg.Log.Warn("auth lockout: address blocked",
			"client", ip.String(), "key", key.String(),
			"failures", l.cfg.MaxFailures, "window", l.cfg.Window.String())
	}
}

// Success records a successful authentication. It clears the login's
// failures (the owner got in; stop slowing them down) but deliberately not
// the address's: otherwise an attacker with one valid account could reset
// its own counter between guesses at other accounts.
func (l *Lockout) Success(ip netip.Addr, login string) {
	_ = ip // kept in the signature for symmetry with Failure
	l.mu.Lock()
	defer l.mu.Unlock()
	l.logins.Remove(l.loginKey(login))
}

// LoginDelay is how long to wait before answering an AUTH for login:
// LoginDelayBase·2^(n-1) after n recent failures, capped at MaxLoginDelay;
// 0 without failures. Like Dovecot's auth penalty it only slows guessing
// down and never refuses the owner.
func (l *Lockout) LoginDelay(login string) time.Duration {
	now := l.cfg.Now()
	l.mu.Lock()
	r, ok := l.logins.Peek(l.loginKey(login))
	n := 0
	if ok {
		n = r.count(now, l.cfg.Window)
	}
	l.mu.Unlock()
	if n == 0 {
		return 0
	}
	d := l.cfg.LoginDelayBase
	for i := 1; i < n && d < l.cfg.MaxLoginDelay; i++ {
		d *= 2
	}
	return min(d, l.cfg.MaxLoginDelay)
}

// Len returns how many addresses and logins are tracked (for tests and
// metrics).
func (l *Lockout) Len() (addrs, logins int) {
	return l.addrs.Len(), l.logins.Len()
}

// addrKey is the unit failures are counted in: the IPv4 address, or the
// IPv6 /64, since one IPv6 host usually controls a whole /64 and could
// otherwise rotate addresses at will. IPv4-mapped IPv6 counts as IPv4.
func addrKey(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.Prefix(64) // fails only for the invalid Addr, giving Prefix{}
	return p
}

// loginKey hashes the login case-folded, so that varying case does not give
// a guesser fresh counters.
func (l *Lockout) loginKey(login string) uint64 {
	return maphash.String(l.seed, strings.ToLower(login))
}

// failureRing keeps the times of the last len(times) failures (or reserved
// attempts): enough to tell whether that many happened within the window,
// in constant memory. Times are Unix seconds in a uint32 (good until 2106):
// a second is fine for windows of minutes, and it halves the memory per key.
type failureRing struct {
	times    []uint32 // 0 = empty slot
	reported uint32   // when the lockout log line was written, 0 never
}

func newFailureRing(size int) *failureRing {
	return &failureRing{times: make([]uint32, size)}
}

// add records t in an empty slot, else over the oldest time.
func (r *failureRing) add(t time.Time) {
	oldest := 0
	for i, v := range r.times {
		if v < r.times[oldest] {
			oldest = i
		}
	}
	r.times[oldest] = uint32(t.Unix())
}

// removeNewest empties the slot with the newest time.
func (r *failureRing) removeNewest() {
	newest := 0
	for i, v := range r.times {
		if v > r.times[newest] {
			newest = i
		}
	}
	r.times[newest] = 0
}

// count returns the number of remembered failures newer than now-window.
func (r *failureRing) count(now time.Time, window time.Duration) int {
	since := uint32(now.Add(-window).Unix())
	n := 0
	for _, t := range r.times {
		if t != 0 && t > since {
			n++
		}
	}
	return n
}
