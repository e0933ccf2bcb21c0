package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/proxy/proxytest"
)

// TestSizeIncludesReceivedE2E (issue 24, part 3): the SIZE= Postern sends
// upstream includes its Received header, so Postfix refuses at MAIL (the
// reply to the first RCPT) a message that, with the header, is over its
// message_size_limit, instead of taking it up to the final dot and
// refusing it there. A message that fits still goes through.
func TestSizeIncludesReceivedE2E(t *testing.T) {
	t.Parallel()
	const limit = 10000
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{MessageSizeLimit: limit})
	p := startPostern(t, pf.Addr)
	c := dialTLSText(t, p.StartTLS, aliceLogin, alicePass)

	// Under the limit as declared, over it with the Received header.
	c.send(fmt.Sprintf("MAIL FROM:<%s> SIZE=%d", aliceLogin, limit-20))
	c.expect("250")
	c.send("RCPT TO:<size@example.test>")
	if line := c.expect("5"); !strings.HasPrefix(line, "552 5.3.4") {
		t.Fatalf("RCPT after MAIL SIZE=%d: %q, want Postfix's 552 5.3.4", limit-20, line)
	}
	c.send("RSET")
	c.expect("250")

	// Room for the header: accepted and delivered.
	msg := "Subject: size-fits\r\n\r\n" + strings.Repeat(strings.Repeat("z", 78)+"\r\n", 80)
	c.send(fmt.Sprintf("MAIL FROM:<%s> SIZE=%d", aliceLogin, len(msg)))
	c.expect("250")
	c.send("RCPT TO:<size@example.test>")
	c.expect("250")
	c.send("DATA")
	c.expect("354")
	c.raw(msg + ".\r\n")
	c.expect("250")
	withSubject(t, pf.WaitMessages(t, 1, 30*time.Second), "size-fits")
}

// TestDSNParametersE2E (issue 24, part 3): the client's DSN parameters
// reach an upstream that offers DSN (Postfix sends the success report
// they ask for, naming the envelope id and the original recipient); with
// an upstream that does not, go-smtp leaves them out, and Postern says so
// in its log, once per session.
func TestDSNParametersE2E(t *testing.T) {
	t.Parallel()
	send := func(t *testing.T, c *textConn, subject string) {
		c.send("MAIL FROM:<" + aliceLogin + "> RET=HDRS ENVID=envid-24")
		c.expect("250")
		c.send("RCPT TO:<dsn@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig@example.test")
		c.expect("250")
		c.send("DATA")
		c.expect("354")
		c.raw("Subject: " + subject + "\r\n\r\nbody\r\n.\r\n")
		c.expect("250")
	}

	t.Run("upstream with DSN", func(t *testing.T) {
		pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
		p := startPostern(t, pf.Addr)
		c := dialTLSText(t, p.StartTLS, aliceLogin, alicePass)
		send(t, c, "dsn-on")
		msgs := pf.WaitMessages(t, 2, 30*time.Second) // the message and Postfix's success report
		if got := proxytest.MessagesTo(msgs, "dsn@example.test"); len(got) != 1 {
			t.Fatalf("dsn@ got %d messages, want 1", len(got))
		}
		var report string
		for _, m := range msgs {
			if m.Recipient == aliceLogin {
				report = string(m.Raw)
			}
		}
		for _, want := range []string{"Original-Envelope-Id: envid-24", "Original-Recipient: RFC822;orig@example.test"} {
			if !strings.Contains(report, want) {
				t.Fatalf("no %q in the report Postfix sent to the sender:\n%s", want, report[strings.Index(report, "Original-Envelope"):])
			}
		}
		if strings.Contains(p.Log(), "DSN parameters dropped") {
			t.Fatal("Postern says it dropped DSN parameters Postfix offers")
		}
	})

	t.Run("upstream without DSN", func(t *testing.T) {
		pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{MainCF: []string{"smtpd_discard_ehlo_keywords = dsn"}})
		p := startPostern(t, pf.Addr)
		c := dialTLSText(t, p.StartTLS, aliceLogin, alicePass)
		send(t, c, "dsn-off-1")
		send(t, c, "dsn-off-2")
		c.send("QUIT")
		c.expect("221")
		pf.WaitMessages(t, 2, 30*time.Second)
		p.proc.WaitOutput(t, "the session's end", 10*time.Second, func(out string) bool {
			return strings.Contains(out, "msg=disconnect")
		})
		if n := strings.Count(p.Log(), "DSN parameters dropped"); n != 1 {
			t.Fatalf("Postern logged the dropped DSN parameters %d times, want once:\n%s", n, p.Log())
		}
	})
}

// TestBodyParameterE2E (issue 24, part 3): the upstream MAIL carries the
// BODY= the client declared, and only when the upstream offers 8BITMIME;
// BODY=8BITMIME went with every message. Postfix's verbose log
// (debug_peer_list) shows each MAIL as received.
func TestBodyParameterE2E(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		mainCF  []string
		declare []string // the client's BODY= per message ("" for none)
		want    []string // the BODY= Postfix gets per message
	}{
		{"upstream with 8BITMIME", nil, []string{"", "7BIT", "8BITMIME"}, []string{"", " BODY=7BIT", " BODY=8BITMIME"}},
		{"upstream without 8BITMIME", []string{"smtpd_discard_ehlo_keywords = 8bitmime"}, []string{"8BITMIME", "7BIT"}, []string{"", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{MainCF: append([]string{"debug_peer_list = 127.0.0.1"}, tc.mainCF...)})
			p := startPostern(t, pf.Addr)
			c := dialTLSText(t, p.StartTLS, aliceLogin, alicePass)
			for i, body := range tc.declare {
				mail := "MAIL FROM:<" + aliceLogin + ">"
				if body != "" {
					mail += " BODY=" + body
				}
				c.send(mail)
				c.expect("250")
				c.send("RCPT TO:<body@example.test>")
				c.expect("250")
				c.send("DATA")
				c.expect("354")
				c.raw(fmt.Sprintf("Subject: body-%d\r\n\r\nbody\r\n.\r\n", i))
				c.expect("250")
			}
			pf.WaitMessages(t, len(tc.declare), 30*time.Second)
			var got []string
			for _, line := range strings.Split(pf.Log(), "\n") {
				if _, rest, ok := strings.Cut(line, "]: MAIL FROM:<"+aliceLogin+">"); ok {
					got = append(got, rest)
				}
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("Postfix got MAIL parameters %q, want %q", got, tc.want)
			}
		})
	}
}
