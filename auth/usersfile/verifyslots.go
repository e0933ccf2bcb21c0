package usersfile

import (
	"context"
	"fmt"
	"sync/atomic"

	"golang.org/x/sync/semaphore"

	"github.com/postern/postern/auth"
)

// VerifySlots bounds how many password hashes are verified at once. A
// bcrypt or argon2 verification is pure CPU: past one per core, more at once
// only makes every one of them (and every other session's TLS handshake and
// message) slower together. Verifications beyond the bound wait their turn
// in a queue (x/sync's semaphore serves waiters in FIFO order), so a login
// storm is served in arrival order instead of all at the pace of the
// slowest. Waiting is never a refusal: only the request's deadline ends it,
// and then as auth.ErrUnavailable (a 454, try again), never as a wrong
// password.
// A nil *VerifySlots does not bound anything. Safe for concurrent use.
type VerifySlots struct {
	slots   *semaphore.Weighted
	waiting atomic.Int64 // verifications queued for a slot now
}

// NewVerifySlots returns a bound of n verifications at once; n <= 0 gives
// nil, no bound. cmd/postern passes runtime.GOMAXPROCS(0) by default.
func NewVerifySlots(n int) *VerifySlots {
	if n <= 0 {
		return nil
	}
	return &VerifySlots{slots: semaphore.NewWeighted(int64(n))}
}

// Waiting is the number of verifications queued for a slot (for the
// postern_auth_verifications_waiting gauge).
func (v *VerifySlots) Waiting() int64 {
	if v == nil {
		return 0
	}
	return v.waiting.Load()
}

// acquire takes a slot, waiting until one is free or ctx ends (then an
// error wrapping auth.ErrUnavailable and ctx.Err()). Call the returned
// release exactly once.
func (v *VerifySlots) acquire(ctx context.Context) (release func(), err error) {
	if v == nil {
		return func() {}, nil
	}
	if !v.slots.TryAcquire(1) {
		// Acquire gives up at the deadline, also when a slot and the
		// deadline come together: nobody waits for a verification past
		// its deadline, so no hash is spent on it.
		v.waiting.Add(1)
		err := v.slots.Acquire(ctx, 1)
		v.waiting.Add(-1)
		if err != nil {
			return nil, fmt.Errorf("%w: waiting for a password verification slot: %w", auth.ErrUnavailable, err)
		}
	}
	return v.release, nil
}

func (v *VerifySlots) release() { v.slots.Release(1) }
