package limits

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern/postern/internal/testkit"
	"github.com/postern/postern/limits/state"
)

var client1 = netip.MustParseAddr("192.0.2.1")

func newTestLimits(cfg LimitsConfig) (*Limits, *testkit.Clock) {
	clock := testkit.NewClock(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	if cfg.Store == nil {
		cfg.Store = state.NewMemory(state.MemoryConfig{Now: clock.Now})
	}
	cfg.Now = clock.Now
	return NewLimits(cfg), clock
}

func isLimitReply(err error) bool { return errors.Is(err, ErrLimitReached) }

// The window slides: the count drops as old messages leave it, not all at
// once at a window boundary.
func TestLimitsSlidingWindow(t *testing.T) {
	l, clock := newTestLimits(LimitsConfig{Messages: Rate{3, time.Hour}})
	for i := 0; i < 3; i++ {
		if err := l.ReserveMessage(NewLimitLogin("Alice"), client1); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		clock.Advance(10 * time.Minute)
	}
	if err := l.ReserveMessage(NewLimitLogin("alice"), client1); !isLimitReply(err) {
		t.Fatalf("fourth: %v, want 451 4.7.1", err)
	}
	clock.Advance(31 * time.Minute) // the first one is now 61 minutes old
	if err := l.ReserveMessage(NewLimitLogin("alice"), client1); err != nil {
		t.Fatalf("after the first left the window: %v", err)
	}
	if err := l.ReserveMessage(NewLimitLogin("alice"), client1); !isLimitReply(err) {
		t.Fatalf("only one left the window: %v", err)
	}
	// A message given back (the upstream refused it) frees its place.
	l.ReleaseMessage(NewLimitLogin("alice"))
	if err := l.ReserveMessage(NewLimitLogin("alice"), client1); err != nil {
		t.Fatalf("after a release: %v", err)
	}
}

func TestLimitsSuspendAfter(t *testing.T) {
	alerts := make(chan AlertEvent, 10)
	l, _ := newTestLimits(LimitsConfig{Messages: Rate{2, time.Hour}, SuspendAfter: 3})
	l.cfg.Alerts = &Alerter{cfg: AlertConfig{URL: "x", Log: l.cfg.Log}, queue: alerts}
	for i := 1; i <= 5; i++ {
		_ = l.ReserveMessage(NewLimitLogin("alice"), client1)
		if _, ok := l.Suspended(NewLimitLogin("alice")); ok {
			t.Fatalf("suspended after %d attempts", i)
		}
	}
	_ = l.ReserveMessage(NewLimitLogin("alice"), client1)
	s, ok := l.Suspended(NewLimitLogin("ALICE"))
	if !ok || !strings.Contains(s.Reason, "6 messages attempts within 1h") || s.Until.Sub(s.Since) != DefaultSuspendFor {
		t.Fatalf("after 6 attempts at 2/1h ×3: %v %v", s, ok)
	}
	for i := 0; i < 5; i++ {
		_ = l.ReserveMessage(NewLimitLogin("alice"), client1)
	}
	if len(alerts) != 1 {
		t.Fatalf("%d alerts, want 1", len(alerts))
	}
	was, err := l.Unsuspend(context.Background(), "Alice")
	if err != nil || !was {
		t.Fatalf("Unsuspend: %v %v", was, err)
	}
	if _, ok := l.Suspended(NewLimitLogin("alice")); ok {
		t.Fatal("still suspended")
	}
	// Over-limit attempts start from zero again: 4 more to suspend.
	for i := 0; i < 3; i++ {
		_ = l.ReserveMessage(NewLimitLogin("alice"), client1)
	}
	if _, ok := l.Suspended(NewLimitLogin("alice")); ok {
		t.Fatal("suspended again too early")
	}
	_ = l.ReserveMessage(NewLimitLogin("alice"), client1)
	if _, ok := l.Suspended(NewLimitLogin("alice")); !ok || len(alerts) != 2 {
		t.Fatalf("not suspended again (alerts %d)", len(alerts))
	}
}

// The refused ratio, with the accepted recipients read from the recipient
// limit's log (24h spans the hour) and from a log of their own (no limit).
func TestLimitsRejectedRatio(t *testing.T) {
	for _, recipients := range []Rate{{1000, 24 * time.Hour}, {}} {
		t.Run(recipients.String(), func(t *testing.T) { testRejectedRatio(t, recipients) })
	}
}

func testRejectedRatio(t *testing.T, recipients Rate) {
	l, clock := newTestLimits(LimitsConfig{Recipients: recipients, SuspendRejectedPercent: 50})
	rcpt := func(refused bool) {
		if err := l.ReserveRecipient(NewLimitLogin("bob"), client1); err != nil {
			t.Fatal(err)
		}
		l.RecipientDone(NewLimitLogin("bob"), client1, true, refused)
	}
	for i := 0; i < 10; i++ {
		rcpt(false)
	}
	clock.Advance(61 * time.Minute) // these leave the hour
	for i := 0; i < 9; i++ {
		rcpt(true)
		rcpt(false)
	}
	rcpt(true)
	if _, ok := l.Suspended(NewLimitLogin("bob")); ok {
		t.Fatal("suspended with 10 refused of 19 in the hour (fewer than 20)")
	}
	rcpt(false)
	// The 21st, refused, makes 11 of 21 in the hour (with the 10 accepted
	// an hour ago it would be 11 of 31).
	rcpt(true)
	if s, ok := l.Suspended(NewLimitLogin("bob")); !ok || !strings.Contains(s.Reason, "11 of 21 recipients refused") {
		t.Fatalf("want suspended for 11 of 21: %v %v", s, ok)
	}
	st, err := l.Status(context.Background(), "bob")
	wantCount := 20
	if recipients.Unlimited() {
		wantCount = 0
	}
	if err != nil || st.Recipients.Count != wantCount || st.Refused.Refused != 11 || st.Refused.Accepted != 10 || st.Suspension == nil {
		t.Fatalf("status: %+v %v", st, err)
	}
}

// A store that fails never refuses anyone (fail open) and is logged.
type failingStore struct{ state.Store }

func (failingStore) Add(context.Context, string, int, time.Duration) (int, bool, error) {
	return 0, false, errors.New("down")
}
func (failingStore) Suspended(context.Context, string) (state.Suspension, bool, error) {
	return state.Suspension{}, false, errors.New("down")
}

func TestLimitsFailOpen(t *testing.T) {
	l, _ := newTestLimits(LimitsConfig{Store: failingStore{}, Messages: Rate{1, time.Hour}, Recipients: Rate{1, time.Hour}})
	for i := 0; i < 3; i++ {
		if err := l.ReserveMessage(NewLimitLogin("alice"), client1); err != nil {
			t.Fatal(err)
		}
		if err := l.ReserveRecipient(NewLimitLogin("alice"), client1); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := l.Suspended(NewLimitLogin("alice")); ok {
		t.Fatal("suspended by a failing store")
	}
}

// N parallel reservations at limit K: exactly K pass.
func TestLimitsParallel(t *testing.T) {
	l, _ := newTestLimits(LimitsConfig{Messages: Rate{20, time.Hour}})
	var passed atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if l.ReserveMessage(NewLimitLogin("alice"), client1) == nil {
				passed.Add(1)
			}
		}()
	}
	wg.Wait()
	if passed.Load() != 20 {
		t.Fatalf("%d passed, want 20", passed.Load())
	}
}

// The webhook gets the event as JSON after a failed attempt (retried), a
// full queue drops instead of blocking, and a 4xx is not retried.
func TestAlerterWebhook(t *testing.T) {
	var calls atomic.Int32
	got := make(chan AlertEvent, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var ev AlertEvent
		if err := json.Unmarshal(body, &ev); err != nil || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		got <- ev
	}))
	defer srv.Close()
	a := NewAlerter(AlertConfig{URL: srv.URL, Host: "mx.test", Backoff: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Run(ctx)
	a.Send(AlertEvent{Event: AlertSuspension, Login: "alice", Limit: LimitMessages, Count: 6, Max: 2, Window: "1h", Client: "192.0.2.1", Time: time.Now()})
	select {
	case ev := <-got:
		if ev.Event != "suspension" || ev.Login != "alice" || ev.Count != 6 || ev.Host != "mx.test" {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
	}
	if calls.Load() != 2 {
		t.Fatalf("%d calls, want 2 (one retry)", calls.Load())
	}

	// Nobody runs this one: the queue fills, Send still returns at once.
	full := NewAlerter(AlertConfig{URL: srv.URL, Queue: 2})
	done := make(chan struct{})
	go func() {
		for i := 0; i < 100; i++ {
			full.Send(AlertEvent{Event: AlertLockout})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Send blocked on a full queue")
	}
	if len(full.queue) != 2 {
		t.Fatalf("queue holds %d, want 2", len(full.queue))
	}
}

// A directory matches a login the way RFC 4518 prepares strings (NFKC,
// case folding, insignificant spaces), so slapd logs "alice@example.org "
// and "ａｌｉｃｅ" in as alice, the backend's Result.Login spelled as typed. Each
// spelling must share alice's counters, limit-file entry and suspension,
// or every extra space is a fresh budget and a way around a suspension.
func TestLimitsLoginSpacesAreOneLogin(t *testing.T) {
	variants := []string{" alice@example.org", "alice@example.org ", "  ALICE@example.org\t", "alice@example.org\u00a0",
		"ａｌｉｃｅ＠ｅｘａｍｐｌｅ.org", "AL\u0130CE@example.org", "alice@example.org\u200b"}
	lf, err := ParseLimitFile(strings.NewReader("alice@example.org messages=2/1h\n"), "limits")
	if err != nil {
		t.Fatal(err)
	}
	l, _ := newTestLimits(LimitsConfig{Messages: Rate{100, time.Hour}})
	l.SetFile(lf)
	for i := 0; i < 2; i++ {
		if err := l.ReserveMessage(NewLimitLogin("alice@example.org"), client1); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	for _, v := range variants {
		// What a session folds once at AUTH and passes to every check.
		if got, want := NewLimitLogin(v), NewLimitLogin("alice@example.org"); got != want {
			t.Errorf("login %q: LimitLogin %+v, want alice's %+v", v, got, want)
		}
		if err := l.ReserveMessage(NewLimitLogin(v), client1); !isLimitReply(err) {
			t.Errorf("login %q after alice's 2 of 2: %v, want 451 4.7.1", v, err)
		}
	}
	ctx := context.Background()
	until := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	if err := l.cfg.Store.Suspend(ctx, state.FoldLogin("alice@example.org"), state.Suspension{Reason: "test", Until: until}); err != nil {
		t.Fatal(err)
	}
	for _, v := range variants {
		if _, ok := l.Suspended(NewLimitLogin(v)); !ok {
			t.Errorf("login %q: not suspended, alice is", v)
		}
		if state.LoginKey(v) != state.LoginKey("alice@example.org") {
			t.Errorf("login %q: lockout key differs from alice's", v)
		}
	}
}
