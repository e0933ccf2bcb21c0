// Package state holds Postern's abuse counters — the AUTH lockout, the
// per-login sending limits and the suspensions — either in this process's
// memory (--state memory) or in Redis, shared by every replica behind a load
// balancer (--state redis://…). No password or hash is ever stored.
//
// Every operation is atomic in the store that holds it (a mutex in memory, a
// Lua script in Redis), so replicas never race a read-modify-write. Keys
// expire on their own: a counter lives as long as its window, a suspension
// until its end.
//
// It knows keys and times, not what they count: it must never import
// limits, policy or proxy.
package state

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
	"time"
)

// Store is where the counters live. Implementations: Memory (one process),
// Redis (shared), and Fallback (Redis, answering from a local Memory while
// Redis is unreachable).
//
// Counters are sliding windows of event times: Count(key, w) is how many
// events Add recorded for key in the last w. Callers pass the same window
// (and limit) for a key every time.
type Store interface {
	// Add records one event for key now, unless key already has limit events
	// within window, in which case it records nothing. It returns the count
	// within window after the call and whether the event was recorded.
	// limit must be > 0: it also bounds what the store keeps per key.
	Add(ctx context.Context, key string, limit int, window time.Duration) (count int, added bool, err error)
	// Record records one event for key now whether or not it is full,
	// keeping only the newest limit events (the oldest is forgotten), and
	// returns the count within window after the call. The AUTH lockout uses
	// it for failures: a further failure keeps an address blocked longer.
	Record(ctx context.Context, key string, limit int, window time.Duration) (count int, err error)
	// RemoveNewest takes back key's newest event (a reservation given back).
	RemoveNewest(ctx context.Context, key string) error
	// Count returns how many events key has within window.
	Count(ctx context.Context, key string, window time.Duration) (int, error)
	// Clear forgets key, and its Once.
	Clear(ctx context.Context, key string) error
	// Once reports true to the first caller for key within ttl, false to
	// every other (on any replica) until ttl has passed: "log once per
	// window", "alert once per suspension".
	Once(ctx context.Context, key string, ttl time.Duration) (bool, error)

	// Suspensions are keyed by LoginKey(login): case-folded and hashed.

	// Suspend records a suspension of login until s.Until (replacing one
	// already there).
	Suspend(ctx context.Context, login string, s Suspension) error
	// Suspended returns login's suspension, if one is in force.
	Suspended(ctx context.Context, login string) (Suspension, bool, error)
	// Unsuspend lifts login's suspension; false if there was none.
	Unsuspend(ctx context.Context, login string) (bool, error)

	// Close releases connections and background work.
	Close() error
}

// FoldLogin is the one spelling of a login that counters, limits and
// suspensions are kept under. A directory matches logins the way RFC 4518
// prepares strings: compatibility forms (NFKC: fullwidth "ａｌｉｃｅ" is
// alice), case-insensitive, format characters and leading, trailing or
// repeated spaces insignificant (§2.2, §2.6.1). LDAP then takes
// "ＡＬＩＣＥ " for alice and hands back the login as typed: each such
// spelling must not be a fresh budget or a way around a suspension, so it
// is folded the same way here (more folding only ever joins spellings).
func FoldLogin(login string) string {
	s := strings.Map(foldRune, norm.NFKC.String(login))
	return strings.Join(strings.Fields(norm.NFKC.String(s)), " ")
}

// foldRune maps r to the lower case of the smallest rune of its case
// orbit (so ſ and s, K and the Kelvin sign K, are one), and drops format
// characters (zero-width space, soft hyphen: mapped to nothing by RFC 4518
// §2.2).
func foldRune(r rune) rune {
	if unicode.Is(unicode.Cf, r) {
		return -1
	}
	min := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < min {
			min = f
		}
	}
	return unicode.ToLower(min)
}

// LoginKey is how a login appears in keys: SHA-256 of the folded login
// (FoldLogin), in hex. Folded so that varying case or spaces gives a
// guesser no fresh counters; hashed so that a key has a bounded length and
// no attacker-chosen bytes, and no login is stored in Redis in the clear.
// Callers building counter keys from a login use it too (e.g.
// "lockout:login:"+LoginKey(login)).
func LoginKey(login string) string {
	sum := sha256.Sum256([]byte(FoldLogin(login)))
	return hex.EncodeToString(sum[:])
}

// Suspension is why and until when a login may not authenticate.
type Suspension struct {
	Reason string    // e.g. "limit-messages exceeded 3x", for logs and `postern status`
	Since  time.Time // when it was decided
	Until  time.Time // when it lifts by itself
}

// errLimit is the error for a limit ≤ 0, a caller's bug.
func errLimit(limit int) error {
	return fmt.Errorf("state: limit %d, must be > 0", limit)
}
