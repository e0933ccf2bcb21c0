package main

// End-to-end test of hole 2 of issue 9 through the built binary and a real
// Postfix: a quoted local part must not forge the envelope.

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/proxy/proxytest"
)

// TestQuotedLocalPartCannotForgeEnvelope: alice owns the whole domain
// example.net. go-smtp hands Postern the path with its quotes removed, so
// forwarding that string let `"ceo@bank.com> ENVID=x"@example.net` reach
// Postfix as MAIL FROM:<ceo@bank.com> ENVID=x@example.net>, and a quoted
// recipient carry NOTIFY=NEVER. Postern must send the address re-quoted
// (Postfix then logs and delivers the quoted address) or refuse it; never
// ceo@bank.com, never another recipient.
func TestQuotedLocalPartCannotForgeEnvelope(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	senderMap := filepath.Join(t.TempDir(), "senders")
	writeFile(t, senderMap, "@example.net "+aliceLogin+"\n")
	p := startPostern(t, pf.Addr, "--sender-map", senderMap)
	delivered := 0
	expectDelivered := func(t *testing.T, subject string) proxytest.Message {
		t.Helper()
		delivered++
		return findSubject(t, pf.WaitMessages(t, delivered, 30*time.Second), subject)
	}
	login := func(t *testing.T) *client {
		c := dialFrom(t, p.StartTLS, "127.0.0.1")
		expectReply(t, "AUTH", c.auth(aliceLogin, alicePass), "235")
		return c
	}
	data := func(c *client, subject string) string {
		c.expect("DATA", "354")
		return c.cmd("Subject: " + subject + "\r\n\r\nhello\r\n.")
	}

	t.Run("forged sender stays quoted in example.net", func(t *testing.T) {
		c := login(t)
		r := c.cmd(`MAIL FROM:<"ceo@bank.com> ENVID=x"@example.net>`)
		if !strings.HasPrefix(r, "250") {
			// Refusing is the other correct answer.
			expectReply(t, "forged MAIL", r, "501 5.1.7")
			return
		}
		c.expect("RCPT TO:<friend@example.test>", "250")
		expectReply(t, "DATA", data(c, "quoted-forged-sender"), "250")
		m := expectDelivered(t, "quoted-forged-sender")
		if want := `"ceo@bank.com> ENVID=x"@example.net`; m.ReturnPath != want {
			t.Fatalf("Return-Path %q, want %q", m.ReturnPath, want)
		}
		for _, l := range strings.Split(pf.WaitLog(t, `from=<"ceo@bank.com> ENVID=x"@example.net>`, 10*time.Second), "\n") {
			if strings.Contains(l, "from=<") {
				t.Logf("Postfix: %s", l)
			}
		}
		if strings.Contains(pf.Log(), "from=<ceo@bank.com>") {
			t.Fatalf("Postfix took ceo@bank.com as the sender:\n%s", pf.Log())
		}
	})

	t.Run("quoted recipient cannot add NOTIFY", func(t *testing.T) {
		c := login(t)
		c.expect("MAIL FROM:<"+aliceLogin+">", "250")
		// Read unquoted, this is RCPT TO:<v@example.test> NOTIFY=NEVER
		// ORCPT=rfc822;v@example.test>: another recipient, with no DSN.
		rcpt := `"v@example.test> NOTIFY=NEVER ORCPT=rfc822;v"@example.test`
		r := c.cmd("RCPT TO:<" + rcpt + ">")
		t.Logf("RCPT TO:<%s>: %s", rcpt, r)
		if !strings.HasPrefix(r, "250") {
			expectReply(t, "quoted RCPT", r, "501 5.1.3")
			c.expect("RCPT TO:<friend@example.test>", "250")
		}
		expectReply(t, "DATA", data(c, "quoted-rcpt"), "250")
		m := expectDelivered(t, "quoted-rcpt")
		if strings.EqualFold(m.Recipient, "v@example.test") || strings.EqualFold(m.OriginalRecipient, "v@example.test") {
			t.Fatalf("delivered to v@example.test: the quoted recipient was read unquoted")
		}
		if strings.HasPrefix(r, "250") && m.OriginalRecipient != rcpt {
			t.Fatalf("X-Original-To %q, want %q", m.OriginalRecipient, rcpt)
		}
		t.Logf("delivered: Delivered-To %q, X-Original-To %q", m.Recipient, m.OriginalRecipient)
		if strings.Contains(pf.Log(), "to=<v@example.test>") {
			t.Fatalf("Postfix got v@example.test as a recipient:\n%s", pf.Log())
		}
	})

	t.Run("legit quoted local part of an owned domain", func(t *testing.T) {
		c := login(t)
		c.expect(`MAIL FROM:<"john smith"@example.net>`, "250")
		c.expect("RCPT TO:<friend@example.test>", "250")
		expectReply(t, "DATA", data(c, "quoted-john-smith"), "250")
		if m := expectDelivered(t, "quoted-john-smith"); m.ReturnPath != `"john smith"@example.net` {
			t.Fatalf("Return-Path %q", m.ReturnPath)
		}
	})

	t.Run("needless quotes are dropped, source route stripped", func(t *testing.T) {
		c := login(t)
		c.expect(`MAIL FROM:<@relay.example,@other.example:"alice"@example.test>`, "250")
		c.expect("RCPT TO:<friend@example.test>", "250")
		expectReply(t, "DATA", data(c, "quoted-needless"), "250")
		if m := expectDelivered(t, "quoted-needless"); m.ReturnPath != aliceLogin {
			t.Fatalf("Return-Path %q", m.ReturnPath)
		}
	})

	t.Run("null sender is not checked, as in Postfix", func(t *testing.T) {
		c := login(t)
		c.expect("MAIL FROM:<>", "250")
		c.expect("RCPT TO:<friend@example.test>", "250")
		expectReply(t, "DATA", data(c, "null-sender"), "250")
		if m := expectDelivered(t, "null-sender"); m.ReturnPath != "" {
			t.Fatalf("Return-Path %q, want empty", m.ReturnPath)
		}
	})

	t.Run("refused", func(t *testing.T) {
		c := login(t)
		for _, tc := range []struct{ cmd, want string }{
			// A quoted local part of a domain alice does not own.
			{`MAIL FROM:<"alice@example.net"@bank.com>`, "553 5.7.1"},
			{`MAIL FROM:<alice@example.test"x>`, "501 5.1.7"},
			{`MAIL FROM:<alice@exa<mple.test>`, "501 5.1.7"},
			{`MAIL FROM:<"a` + "\x01" + `b"@example.net>`, "501 5.1.7"},
			{"MAIL FROM:<" + strings.Repeat("a", 65) + "@example.net>", "501 5.1.7"},
			{"MAIL FROM:<jörg@example.net>", "501 5.1.7"}, // no SMTPUTF8
			{"MAIL FROM:<alice@[192.0.2.1]>", "553 5.7.1"},
		} {
			expectReply(t, tc.cmd, c.cmd(tc.cmd), tc.want)
		}
		c.expect("MAIL FROM:<"+aliceLogin+">", "250")
		for _, rcpt := range []string{`"a` + "\x01" + `b"@example.test`, "jörg@example.test", "x@example.test\"y",
			"x@[300.1.1.1]", strings.Repeat("a", 65) + "@example.test"} {
			expectReply(t, rcpt, c.cmd("RCPT TO:<"+rcpt+">"), "501 5.1.3")
		}
		c.expect("RCPT TO:<x@[192.0.2.1]>", "250")
		c.expect("RSET", "250")
		c.expect("MAIL FROM:<"+aliceLogin+"> SMTPUTF8", "250")
		c.expect("RCPT TO:<jörg@example.test>", "250")
		c.expect("RSET", "250")
	})
}
