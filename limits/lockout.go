package limits

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/postern/postern/limits/state"
	"github.com/postern/postern/policy"
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
	// MaxUnavailable is how many AUTHs of an address (IPv4) or network
	// (IPv6 /64) may end "backend unavailable" (454) within Window; with
	// that many it is Blocked like one with MaxFailures failures. Such an
	// attempt tells the client nothing about the password, but without a
	// bound an outage would be a free pass for endless attempts (and load
	// on the backend that is recovering). Default
	// DefaultLockoutMaxUnavailable. Memory: a ring of this many times per
	// address that had such attempts (8 bytes each).
	MaxUnavailable int
	// MaxKeys bounds the addresses, and separately the logins, tracked in
	// this process's memory when Store is nil; the least recently seen are
	// forgotten first. Default state.DefaultMemoryMaxKeys.
	MaxKeys int
	// LoginDelayBase is the delay after one recent failure for a login; it
	// doubles with each further failure up to MaxLoginDelay. Defaults
	// DefaultLoginDelay and DefaultMaxLoginDelay.
	LoginDelayBase time.Duration
	MaxLoginDelay  time.Duration
	// Now is the clock; tests inject a fake one. Default time.Now.
	Now func() time.Time
	// Log, if set, gets one line when an address becomes blocked (for
	// fail2ban).
	Log *slog.Logger
	// Store holds the counters (--state): shared by replicas with Redis.
	// Nil: this process's memory, bounded by MaxKeys.
	Store state.Store
	// Alerts, if set, gets the alert of an address locked out (LockedOut).
	Alerts *Limits
}

func (c LockoutConfig) withDefaults() LockoutConfig {
	if c.MaxFailures <= 0 {
		c.MaxFailures = DefaultLockoutMaxFailures
	}
	if c.Window <= 0 {
		c.Window = DefaultLockoutWindow
	}
	if c.MaxUnavailable <= 0 {
		c.MaxUnavailable = DefaultLockoutMaxUnavailable
	}
	if c.MaxKeys <= 0 {
		c.MaxKeys = state.DefaultMemoryMaxKeys
	}
	if c.LoginDelayBase <= 0 {
		c.LoginDelayBase = DefaultLoginDelay
	}
	if c.MaxLoginDelay <= 0 {
		c.MaxLoginDelay = DefaultMaxLoginDelay
	}
	c.MaxLoginDelay = max(c.MaxLoginDelay, c.LoginDelayBase)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// loginRingSize is how many recent failures per login need remembering: the
// count at which the doubling delay reaches its cap (7 with the defaults).
func (c LockoutConfig) loginRingSize() int {
	n := 1
	for d := c.LoginDelayBase; d < c.MaxLoginDelay; d = c.doubled(d) {
		n++
	}
	return n
}

// doubled is twice d, at most MaxLoginDelay (and never past the largest
// Duration, whatever the flags say).
func (c LockoutConfig) doubled(d time.Duration) time.Duration {
	if d > c.MaxLoginDelay/2 {
		return c.MaxLoginDelay
	}
	return 2 * d
}

// Lockout counts failed authentications per client address and per login.
//
// Addresses are blocked outright once they reach MaxFailures in Window: that
// is what stops one machine guessing. Logins are never blocked, only slowed
// (LoginDelay), because a lockout per login would let anyone lock the real
// owner out by guessing wrong on purpose; the owner, connecting from an
// address with no failures, always gets in.
//
// The counters live in a state.Store: by default two of this process's
// Memory stores, one for addresses and one for logins, each an LRU of
// MaxKeys keys holding a fixed ring of times (so a flood of logins cannot
// evict the addresses); with --state redis:// one store shared by every
// replica, so failures spread over replicas add up. Logins are keyed by
// state.LoginKey (SHA-256 of the case-folded login), not the
// attacker-chosen, arbitrarily long string. A flood of distinct addresses
// evicts older Memory entries, which can forget a blocked address early;
// counting IPv6 per /64 keeps one host from producing such a flood cheaply.
//
// The store answers every call (Fallback falls back to memory when Redis
// fails); should one still fail, the lockout fails open for that call:
// a store error must not refuse every user. Safe for concurrent use.
type Lockout struct {
	cfg    LockoutConfig
	addrs  state.Store
	logins state.Store
}

// NewLockout returns a Lockout on cfg.Store, or on memory of its own.
func NewLockout(cfg LockoutConfig) *Lockout {
	cfg = cfg.withDefaults()
	l := &Lockout{cfg: cfg, addrs: cfg.Store, logins: cfg.Store}
	if cfg.Store == nil {
		l.addrs = state.NewMemory(state.MemoryConfig{MaxKeys: cfg.MaxKeys, Now: cfg.Now})
		l.logins = state.NewMemory(state.MemoryConfig{MaxKeys: cfg.MaxKeys, Now: cfg.Now})
	}
	return l
}

// Key names in the store. The address is its prefix (see policy.ClientNetwork); the
// login its state.LoginKey.
func addrCounter(p netip.Prefix) string     { return "lockout:addr:" + p.String() }
func addrReported(p netip.Prefix) string    { return "lockout:blocked:" + p.String() }
func unavailCounter(p netip.Prefix) string  { return "lockout:unavailable:" + p.String() }
func unavailReported(p netip.Prefix) string { return "lockout:unavailable-blocked:" + p.String() }
func loginCounter(login string) string      { return "lockout:login:" + state.LoginKey(login) }

// storeErr logs a store failure; the caller then fails open.
func (l *Lockout) storeErr(what string, err error) {
	if l.cfg.Log != nil {
		l.cfg.Log.Error("auth lockout: state store failed, not counting", "op", what, "err", err)
	}
}

// Blocked reports whether ip (its /64 for IPv6) has used up its MaxFailures
// attempts within the window (failures, and attempts reserved and still
// being verified), or its MaxUnavailable attempts that ended with a backend
// unavailable; the caller answers 421 4.7.0 and closes.
func (l *Lockout) Blocked(ip netip.Addr) bool {
	key := policy.ClientNetwork(ip)
	n, err := l.addrs.Count(context.Background(), addrCounter(key), l.cfg.Window)
	if err != nil {
		l.storeErr("blocked", err)
		return false
	}
	return n >= l.cfg.MaxFailures || l.unavailableSpent(key)
}

// unavailableSpent reports whether key has MaxUnavailable attempts that
// ended "unavailable" within the window.
func (l *Lockout) unavailableSpent(key netip.Prefix) bool {
	n, err := l.addrs.Count(context.Background(), unavailCounter(key), l.cfg.Window)
	if err != nil {
		l.storeErr("blocked", err)
		return false
	}
	return n >= l.cfg.MaxUnavailable
}

// Reserve counts one authentication attempt from ip before its credentials
// are verified, and reports false (counting nothing) when ip has no attempt
// left. Counting first is what makes parallel guesses count: if the count
// came only after the (slow) hash check, N connections sending wrong
// passwords at the same instant would all pass the check and all get a
// verdict. A reserved attempt therefore also bounds how many AUTHs of one
// address are verified at once: never more than MaxFailures (across all
// replicas sharing the store: the check and the count are one atomic step
// in it). The caller ends each reserved attempt with ReservedFailure (wrong
// credentials), ReservedUnavailable or Release.
//
// An address whose MaxUnavailable budget is spent gets false too. That
// check and the count are two steps, so parallel attempts can pass it
// together: by at most the MaxFailures attempts the reservations let
// through at once.
func (l *Lockout) Reserve(ip netip.Addr) bool {
	key := policy.ClientNetwork(ip)
	if l.unavailableSpent(key) {
		return false
	}
	_, added, err := l.addrs.Add(context.Background(), addrCounter(key), l.cfg.MaxFailures, l.cfg.Window)
	if err != nil {
		l.storeErr("reserve", err)
		return true
	}
	return added
}

// Release gives back an attempt Reserve counted for ip: the credentials
// were right (or never checked: the client left). It drops the newest
// attempt on record, which is the reserved one or one made within the same
// verification time; an address is never left with fewer attempts than it
// made wrong guesses.
func (l *Lockout) Release(ip netip.Addr) {
	if err := l.addrs.RemoveNewest(context.Background(), addrCounter(policy.ClientNetwork(ip))); err != nil {
		l.storeErr("release", err)
	}
}

// ReservedUnavailable ends an attempt Reserve counted for ip whose
// credentials no backend could check (454): it is given back as a failure
// and counted toward the address's MaxUnavailable budget instead. Once the
// budget is spent, one log line per window says so; it is deliberately not
// the "address blocked" line the fail2ban filter reads: the usual cause is
// an outage, and the address an office of real users behind one NAT.
func (l *Lockout) ReservedUnavailable(ip netip.Addr) {
	l.Release(ip)
	ctx := context.Background()
	key := policy.ClientNetwork(ip)
	n, err := l.addrs.Record(ctx, unavailCounter(key), l.cfg.MaxUnavailable, l.cfg.Window)
	if err != nil {
		l.storeErr("unavailable", err)
		return
	}
	if n < l.cfg.MaxUnavailable || l.cfg.Log == nil {
		return
	}
	first, err := l.addrs.Once(ctx, unavailReported(key), l.cfg.Window)
	if err != nil {
		l.storeErr("unavailable", err)
	}
	if first {
		l.cfg.Log.Warn("auth lockout: address blocked after attempts while a backend was unavailable",
			"client", ip.String(), "key", key.String(),
			"attempts", l.cfg.MaxUnavailable, "window", l.cfg.Window.String())
	}
}

// Failure records a failed authentication (wrong credentials only, never a
// backend that was unavailable) from ip that was not reserved: the address
// gets one failure, and so does each distinct one of logins (the spelling
// typed, and the account's canonical identity when a backend named it; ""
// is skipped).
func (l *Lockout) Failure(ip netip.Addr, logins ...string) {
	l.failure(ip, logins, false)
}

// ReservedFailure records that an attempt Reserve counted for ip had wrong
// credentials: the address keeps the attempt, and each distinct one of
// logins gets a failure (LoginDelay), as in Failure.
func (l *Lockout) ReservedFailure(ip netip.Addr, logins ...string) {
	l.failure(ip, logins, true)
}

func (l *Lockout) failure(ip netip.Addr, logins []string, reserved bool) {
	ctx := context.Background()
	key := policy.ClientNetwork(ip)
	var n int
	var err error
	if reserved {
		n, err = l.addrs.Count(ctx, addrCounter(key), l.cfg.Window)
	} else {
		// A failure past the limit still counts, over the oldest: the
		// block lasts until the newest MaxFailures have left the window.
		n, err = l.addrs.Record(ctx, addrCounter(key), l.cfg.MaxFailures, l.cfg.Window)
	}
	if err != nil {
		l.storeErr("failure", err)
	}
	// One log line per block and window, whichever replica sees it (for
	// fail2ban).
	if n >= l.cfg.MaxFailures && l.cfg.Log != nil {
		first, err := l.addrs.Once(ctx, addrReported(key), l.cfg.Window)
		if err != nil {
			l.storeErr("failure", err)
		}
		if first {
			l.cfg.Log.Warn("auth lockout: address blocked",
				"client", ip.String(), "key", key.String(),
				"failures", l.cfg.MaxFailures, "window", l.cfg.Window.String())
		}
	}
	for _, k := range loginCounters(logins) {
		if _, err := l.logins.Record(ctx, k, l.cfg.loginRingSize(), l.cfg.Window); err != nil {
			l.storeErr("failure", err)
		}
	}
}

// LockedOut reports ip, which the caller found Blocked after a failed AUTH
// of login, to cfg.Alerts (once per window on any replica), with this
// lockout's MaxFailures and Window.
func (l *Lockout) LockedOut(ip netip.Addr, login string) {
	if l.cfg.Alerts != nil {
		l.cfg.Alerts.lockedOut(ip, login, l.cfg.MaxFailures, l.cfg.Window)
	}
}

// Success records a successful authentication. It clears the failures of
// logins (the spelling typed and the account's canonical identity: the
// owner got in; stop slowing them down) but deliberately not the address's:
// otherwise an attacker with one valid account could reset its own counter
// between guesses at other accounts.
func (l *Lockout) Success(ip netip.Addr, logins ...string) {
	_ = ip // kept in the signature for symmetry with Failure
	for _, k := range loginCounters(logins) {
		if err := l.logins.Clear(context.Background(), k); err != nil {
			l.storeErr("success", err)
		}
	}
}

// loginCounters are the distinct counter keys of logins, "" left out: two
// spellings that fold alike are one login and count once.
func loginCounters(logins []string) []string {
	keys := make([]string, 0, len(logins))
	for _, login := range logins {
		if login == "" {
			continue
		}
		if k := loginCounter(login); !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

// LoginDelay is how long to wait before answering an AUTH for login:
// LoginDelayBase·2^(n-1) after n recent failures, capped at MaxLoginDelay;
// 0 without failures. Like Dovecot's auth penalty it only slows guessing
// down and never refuses the owner.
func (l *Lockout) LoginDelay(login string) time.Duration {
	n, err := l.logins.Count(context.Background(), loginCounter(login), l.cfg.Window)
	if err != nil {
		l.storeErr("login delay", err)
		return 0
	}
	if n == 0 {
		return 0
	}
	d := l.cfg.LoginDelayBase
	for i := 1; i < n && d < l.cfg.MaxLoginDelay; i++ {
		d = l.cfg.doubled(d)
	}
	return min(d, l.cfg.MaxLoginDelay)
}

// Len returns how many addresses and logins this process's memory tracks
// (for tests and metrics); 0 for a store that is not in memory, and the
// same total twice for one store shared by both.
func (l *Lockout) Len() (addrs, logins int) {
	return storeLen(l.addrs), storeLen(l.logins)
}

func storeLen(s state.Store) int {
	if m, ok := s.(interface{ Len() int }); ok {
		return m.Len()
	}
	return 0
}
