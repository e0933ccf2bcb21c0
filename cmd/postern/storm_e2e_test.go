package main

import (
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/auth/usersfile"
	"github.com/postern/postern/internal/testkit"
)

// TestAuthConcurrencyQueues: with --auth-concurrency 1, eight AUTHs sent at
// the same moment (distinct users, bcrypt cost 10, cache off) and one for an
// unknown user all wait their turn for the one verification slot: every
// known user gets 235 and the unknown one 535 (its dummy verification queues
// too), none is refused with 4xx for being beyond the bound. The queue's
// gauge is exported and back at 0 afterwards. (The binary runs under the
// race detector here: a bcrypt takes ~0.7 s, so the storm takes seconds.)
func TestAuthConcurrencyQueues(t *testing.T) {
	t.Parallel()
	const n = 8
	var users strings.Builder
	passwords := make([]string, n)
	for i := range passwords {
		passwords[i] = fmt.Sprintf("storm-pw-%d", i)
		hash, err := usersfile.HashPassword(passwords[i], "BLF-CRYPT")
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&users, "storm%d@example.test:%s\n", i, hash)
	}
	metricsAddr := testkit.FreeAddr(t)
	p := startPosternUsers(t, testkit.FreeAddr(t), users.String(), "--auth-concurrency", "1",
		"--auth-cache-ttl", "0", "--auth-max-failures", "1000", "--metrics", metricsAddr,
		"--auth-timeout", "5m") // the queue, not the timeout, is under test
	p.waitLog(t, `msg="metrics listening"`, 10*time.Second)

	t0 := time.Now()
	clients := make([]*client, n+1)
	for i := range clients {
		clients[i] = dialFrom(t, p.StartTLS, "127.0.0.1")
	}
	// Send every AUTH before reading any reply, so all are in flight at once.
	for i, c := range clients {
		login, pw := fmt.Sprintf("storm%d@example.test", i), "wrong"
		if i < n {
			pw = passwords[i]
		} else {
			login = "nobody@example.test"
		}
		line := "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+login+"\x00"+pw)) + "\r\n"
		if _, err := io.WriteString(c.conn, line); err != nil {
			t.Fatalf("sending AUTH %d: %v", i, err)
		}
	}
	for i, c := range clients {
		want := "235"
		if i == n {
			want = "535 5.7.8"
		}
		expectReply(t, fmt.Sprintf("AUTH %d of a storm through one slot", i), c.cmd(""), want)
	}
	t.Logf("storm answered %v after the first dial", time.Since(t0).Round(time.Millisecond))
	m, _ := opsScrape(t, "http://"+metricsAddr+"/metrics")
	if v, ok := m["postern_auth_verifications_waiting"]; !ok || v != 0 {
		t.Errorf("postern_auth_verifications_waiting = %v (exported: %v) after the storm, want 0", v, ok)
	}
}
