package usersfile

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern/postern/auth"
)

// slowHash is a fake verification that counts how many run at once and
// holds each for hold (or until gate is closed, if gate is not nil).
type slowHash struct {
	hold     time.Duration
	gate     chan struct{}
	running  atomic.Int32
	maxSeen  atomic.Int32
	finished atomic.Int32
}

func (s *slowHash) parsed() parsedHash {
	return parsedHash{scheme: "FAKE", costClass: "fake", check: func(password string) (bool, error) {
		n := s.running.Add(1)
		for {
			m := s.maxSeen.Load()
			if n <= m || s.maxSeen.CompareAndSwap(m, n) {
				break
			}
		}
		if s.gate != nil {
			select { // bounded, so a missing slot bound fails the test instead of hanging it
			case <-s.gate:
			case <-time.After(5 * time.Second):
			}
		} else {
			time.Sleep(s.hold)
		}
		s.running.Add(-1)
		s.finished.Add(1)
		return password == "right", nil
	}}
}

func fakeUsers(h parsedHash) *Users {
	return &Users{name: "fake", byLogin: map[string]*userEntry{"alice": {login: "alice", hash: h}}, dummy: h}
}

// TestVerifySlotsBoundConcurrency: 24 logins at once (known and unknown
// users, right and wrong passwords) through a bound of 3 never have more
// than 3 verifications running, and all of them are answered (a queue, not
// a refusal). Without the bound the same storm runs more than 3 at once,
// so the check can fail.
func TestVerifySlotsBoundConcurrency(t *testing.T) {
	storm := func(slots *VerifySlots) *slowHash {
		h := &slowHash{hold: 20 * time.Millisecond}
		u := fakeUsers(h.parsed())
		var wg sync.WaitGroup
		errs := make(chan error, 24)
		for i := 0; i < 24; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				login, pw := "alice", "right"
				switch i % 3 {
				case 1:
					pw = "wrong"
				case 2:
					login = fmt.Sprintf("nobody%d", i) // the dummy verification
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				_, err := u.authenticate(ctx, auth.Request{Login: login, Password: pw}, slots)
				if (err == nil) != (i%3 == 0) || err != nil && !errors.Is(err, auth.ErrInvalidCredentials) {
					errs <- fmt.Errorf("login %d (%s/%s): %v", i, login, pw, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		return h
	}
	slots := NewVerifySlots(3)
	h := storm(slots)
	if got := h.maxSeen.Load(); got > 3 || got < 1 {
		t.Errorf("with 3 slots, %d verifications ran at once", got)
	}
	if got := h.finished.Load(); got != 24 {
		t.Errorf("%d of 24 verifications ran", got)
	}
	if w := slots.Waiting(); w != 0 {
		t.Errorf("Waiting() = %d after the storm, want 0", w)
	}
	if got := storm(nil).maxSeen.Load(); got <= 3 {
		t.Errorf("control: without a bound only %d ran at once; the test cannot tell a bound from none", got)
	}
}

// TestVerifySlotsWaitTimesOutAsUnavailable: a login whose turn does not come
// before its deadline is a temporary failure (454), never invalid
// credentials (535, counted against the client), and it is not hashed.
// Through File, the cache and the chain, as cmd/postern wires it.
func TestVerifySlotsWaitTimesOutAsUnavailable(t *testing.T) {
	h := &slowHash{gate: make(chan struct{})}
	u := fakeUsers(h.parsed())
	slots := NewVerifySlots(1)
	p := &File{path: "fake", slots: slots}
	p.users.Store(u)
	stack := auth.NewCache(auth.Chain(p), time.Minute, 0)

	busy := make(chan error, 1)
	go func() {
		_, err := stack.Authenticate(context.Background(), auth.Request{Login: "alice", Password: "right"})
		busy <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for h.running.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	for _, login := range []string{"alice", "nobody"} {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, err := stack.Authenticate(ctx, auth.Request{Login: login, Password: "wrong"})
		cancel()
		if !errors.Is(err, auth.ErrUnavailable) || errors.Is(err, auth.ErrInvalidCredentials) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s waiting past its deadline: %v, want ErrUnavailable (deadline exceeded)", login, err)
		}
	}
	// The cache runs a verification in a goroutine of its own
	// (singleflight) and its caller returns at its deadline: the queued
	// verification leaves the queue just after, on the same deadline.
	for deadline := time.Now().Add(10 * time.Second); slots.Waiting() != 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if w := slots.Waiting(); w != 0 {
		t.Errorf("Waiting() = %d after the waiters gave up, want 0", w)
	}
	close(h.gate)
	if err := <-busy; err != nil {
		t.Errorf("the login holding the slot: %v", err)
	}
	if got := h.finished.Load(); got != 1 {
		t.Errorf("%d verifications ran, want 1 (the timed-out waiters must not hash)", got)
	}
	// The slot was given back: the next login goes through.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := stack.Authenticate(ctx, auth.Request{Login: "nobody", Password: "x"}); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Errorf("after the slot was released: %v, want ErrInvalidCredentials", err)
	}
}
