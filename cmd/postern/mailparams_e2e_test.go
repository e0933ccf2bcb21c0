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
