package main

// End-to-end test of the Received header Postern writes in --received full
// mode when the client picks a hostile EHLO name: a raw client through the
// built binary, a real Postfix as upstream, and the message as delivered.

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/proxy/proxytest"
)

// dialEHLO is opsDial with the client's own EHLO name.
func dialEHLO(t *testing.T, addr, ehlo string) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("dialing %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &client{t: t, conn: conn, br: bufio.NewReader(conn)}
	c.expect("", "220")
	c.expect("EHLO "+ehlo, "250")
	c.expect("STARTTLS", "220")
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	c.conn, c.br = tc, bufio.NewReader(tc)
	c.expect("EHLO "+ehlo, "250")
	return c
}

func TestReceivedFullHostileEHLOE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	p := startPostern(t, pf.Addr, "--received", "full")
	cases := map[string]string{
		"long":      strings.Repeat("a", 1990), // the 1,990-character EHLO of the report
		"long-dots": strings.Repeat("sub.", 497) + "xy",
		"comment":   "evil)(X-Injected:_1(((",
		"bare-cr":   "evil\rX-Injected:\r1",
	}
	for subject, ehlo := range cases {
		c := dialEHLO(t, p.StartTLS, ehlo)
		expectReply(t, "AUTH", c.auth(aliceLogin, alicePass), "235")
		expectReply(t, "message "+subject, c.send(aliceLogin, "friend@example.test", subject), "250")
		c.expect("QUIT", "221")
	}
	msgs := pf.WaitMessages(t, len(cases), 30*time.Second)
	for subject := range cases {
		m := findSubject(t, msgs, subject)
		for i, line := range strings.Split(string(m.Raw), "\n") {
			if len(line) > 998 {
				t.Errorf("%s: delivered line %d has %d octets (over RFC 5322's 998): %.60q...", subject, i, len(line), line)
			}
			if strings.HasPrefix(line, "X-Injected") {
				t.Errorf("%s: the EHLO name injected a header line: %q", subject, line)
			}
		}
		msg, err := mail.ReadMessage(strings.NewReader(string(m.Data)))
		if err != nil {
			t.Errorf("%s: the delivered message does not parse: %v", subject, err)
			continue
		}
		received := msg.Header["Received"]
		if len(received) != 1 || !strings.Contains(received[0], "by submission.test (Postern)") {
			t.Errorf("%s: want one Received by Postern below Postfix's, got %q", subject, received)
			continue
		}
		if len(msg.Header) != 2 { // Received and Subject
			t.Errorf("%s: header fields %v, want Received and Subject only", subject, msg.Header)
		}
		if strings.Count(received[0], "(") != strings.Count(received[0], ")") {
			t.Errorf("%s: unbalanced comment in %q", subject, received[0])
		}
		t.Logf("%s: Postern's Received: %.200s", subject, received[0])
	}
}
