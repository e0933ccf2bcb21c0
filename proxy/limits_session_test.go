package proxy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/limits"
	"github.com/postern/postern/limits/state"
	"github.com/postern/postern/proxy/proxytest"
)

// A login suspended while one of its sessions is open (here: directly in
// the store, as another replica would) is stopped at that session's next
// MAIL once SuspendRecheck has passed, and its next AUTH gets 535 5.7.8
// with the right password.
func TestSuspendedWhileLoggedIn(t *testing.T) {
	store := state.NewMemory(state.MemoryConfig{})
	lim := limits.NewLimits(limits.LimitsConfig{Store: store, Messages: limits.Rate{N: 100, Window: time.Hour}, SuspendRecheck: time.Nanosecond})
	env := startServer(t, proxytest.UpstreamOptions{}, func(c *Config) { c.Limits = lim })
	c := dialClient(t, env.starttls, false).ready(testUser, testPass)
	if code, _ := c.sendMessage(testUser, []string{"bob@example.test"}, simpleBody); code != 250 {
		t.Fatalf("first message: %d", code)
	}
	now := time.Now()
	if err := store.Suspend(context.Background(), testUser, state.Suspension{Reason: "test", Since: now, Until: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	c.cmd("MAIL FROM:<"+testUser+">", 451, "4.7.1 Sending limit reached for "+testUser)
	if !strings.Contains(env.log.String(), `msg="mail refused: login suspended"`) {
		t.Fatalf("no log line:\n%s", env.log.String())
	}
	c2 := dialClient(t, env.starttls, false).ready("", "")
	c2.authPlain(testUser, testPass, 535, "5.7.8")
	if len(env.up.Messages()) != 1 {
		t.Fatalf("upstream got %d messages, want 1", len(env.up.Messages()))
	}
}

// Two sessions of one login spelled two ways (a directory takes both and
// the backend hands the login back as typed) share one budget: the session
// folds its login once at AUTH and every MAIL and RCPT counts under that.
func TestLimitsSessionsOfTwoSpellingsShareABudget(t *testing.T) {
	const other = "ALICE@Example.TEST" // testUser in another case
	lim := limits.NewLimits(limits.LimitsConfig{Store: state.NewMemory(state.MemoryConfig{}), Messages: limits.Rate{N: 1, Window: time.Hour}, Recipients: limits.Rate{N: 100, Window: time.Hour}})
	env := startServer(t, proxytest.UpstreamOptions{}, func(c *Config) {
		c.Limits = lim
		c.Auth = &fakeAuth{users: map[string]string{testUser: testPass, other: testPass}}
	})
	c := dialClient(t, env.starttls, false).ready(testUser, testPass)
	if code, text := c.sendMessage(testUser, []string{"bob@example.test"}, simpleBody); code != 250 {
		t.Fatalf("first message: %d %s", code, text)
	}
	c2 := dialClient(t, env.starttls, false).ready(other, testPass)
	c2.cmd("MAIL FROM:<"+testUser+">", 451, "4.7.1 Sending limit reached for "+testUser)
	if st, err := lim.Status(context.Background(), other); err != nil || st.Messages.Count != 1 {
		t.Fatalf("status of %s: %+v, %v; want the 1 message sent as %s", other, st, err, testUser)
	}
	if n := len(env.up.Messages()); n != 1 {
		t.Fatalf("upstream got %d messages, want 1", n)
	}
}
