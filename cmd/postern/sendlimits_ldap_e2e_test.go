package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/postern/postern/auth/authtest"
	"github.com/postern/postern/proxy/proxytest"
)

// TestSendLimitLDAPLoginSpellingsE2E: slapd matches a login the way RFC
// 4518 prepares strings, so "alice ", " alice", "ALICE" and the fullwidth
// "ＡＬＩＣＥ" all bind as uid=alice, whose canonical identity is her mail.
// They are one login for --limit-messages: once alice has used her 2/1h,
// every other spelling gets 451 4.7.1 too (before, each was a fresh budget).
func TestSendLimitLDAPLoginSpellingsE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	s := authtest.StartSlapd(t)
	s.AddUser("alice", "alice-ldap-secret", aliceLogin)
	p := startPosternUsers(t, pf.Addr, "",
		"--ldap-url", s.URL, "--ldap-base", authtest.LDAPBase, "--ldap-filter", "(|(uid=%u)(mail=%u))",
		"--auth-cache-ttl", "0", "--limit-messages", "2/1h", "--suspend-after", "0")
	c := dialAuth(t, p.StartTLS, "alice", "alice-ldap-secret")
	defer c.Close()
	for i := 1; i <= 2; i++ {
		if stage, err := sendOn(t, c, aliceLogin, []string{"friend@example.test"}, fmt.Sprintf("m%d", i)); err != nil {
			t.Fatalf("message %d refused at %s: %v", i, stage, err)
		}
	}
	for _, login := range []string{"alice ", " alice", "ALICE", "ＡＬＩＣＥ"} {
		c := dialAuth(t, p.StartTLS, login, "alice-ldap-secret") // slapd takes it for alice
		_, err := sendOn(t, c, aliceLogin, []string{"friend@example.test"}, "again as "+login)
		wantLimitReply(t, fmt.Sprintf("login %q after alice's 2 of 2", login), err, aliceLogin)
		c.Close()
	}
	if got := len(proxytest.MessagesTo(pf.WaitMessages(t, 2, 30*time.Second), "friend@example.test")); got != 2 {
		t.Fatalf("Postfix got %d messages, want alice's 2", got)
	}
}
