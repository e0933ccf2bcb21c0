package main

import (
	"bytes"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/proxy/proxytest"
)

// TestGateCRCRLFLastLineE2E: a message whose last line ends in CR CR LF
// (or whose line ".\r" is followed by CRLF) ends at the next ".\r\n" and
// gets its 554 for the bare CR at once, not after --data-timeout; nothing
// reaches the upstream and the session goes on.
func TestGateCRCRLFLastLineE2E(t *testing.T) {
	t.Parallel()
	up := proxytest.StartUpstream(t, proxytest.UpstreamOptions{})
	p := startPostern(t, up.Addr, "--data-timeout", "10m", "--command-timeout", "10m")

	for _, tc := range []struct{ name, body string }{
		{"line CR CR LF", "Subject: crcrlf\r\n\r\nline\r\r\n.\r\n"},
		{"dot CR CR LF", "Subject: dotcrcrlf\r\n\r\n.\r\r\n.\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialTLSText(t, p.StartTLS, aliceLogin, alicePass)
			c.send("MAIL FROM:<" + aliceLogin + ">")
			c.expect("250")
			c.send("RCPT TO:<friend@example.test>")
			c.expect("250")
			c.send("DATA")
			c.expect("354")
			c.raw(tc.body)
			if line := replyWithin(t, c, 10*time.Second); !strings.HasPrefix(line, "554 ") {
				t.Fatalf("reply to the message: %q, want 554", line)
			}
			c.send("NOOP")
			c.expect("250")
			c.send("QUIT")
			c.expect("221")
		})
	}
	if msgs := up.Messages(); len(msgs) != 0 {
		t.Fatalf("the upstream accepted %d messages: %q", len(msgs), msgs[0].Data)
	}
}

// replyWithin reads one reply's last line, failing after d.
func replyWithin(t *testing.T, c *textConn, d time.Duration) string {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(d))
	for {
		if i := bytes.Index(c.buf, []byte("\r\n")); i >= 0 {
			line := string(c.buf[:i])
			c.buf = c.buf[i+2:]
			if len(line) >= 4 && line[3] == '-' {
				continue
			}
			return line
		}
		b := make([]byte, 4096)
		n, err := c.conn.Read(b)
		if err != nil {
			t.Fatalf("no reply within %v: %v", d, err)
		}
		c.buf = append(c.buf, b[:n]...)
	}
}

// TestGateOverlongCommandE2E: an over-long command line gets
// "500 5.5.6 Line too long", nothing of it runs, and the session goes on
// (the line is read to its end, as Postfix does; TestLongCommandLineE2E has
// the long ones), never a TCP reset that would make the client's kernel
// drop the reply: before TLS (NOOP, EHLO) and after it (AUTH PLAIN with the
// response inline or after the 334).
func TestGateOverlongCommandE2E(t *testing.T) {
	t.Parallel()
	up := proxytest.StartUpstream(t, proxytest.UpstreamOptions{})
	p := startPostern(t, up.Addr)
	long := func(n int) string { return strings.Repeat("QUFB", n/4) }

	plain := func(t *testing.T) *textConn {
		conn, err := net.Dial("tcp", p.StartTLS)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		c := smtpText(t, conn)
		c.expect("220")
		return c
	}
	afterTLS := func(t *testing.T) *textConn {
		c := plain(t)
		c.send("EHLO x.test")
		c.expect("250")
		c.send("STARTTLS")
		c.expect("220")
		tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		c = smtpText(t, tc)
		c.send("EHLO x.test")
		c.expect("250")
		return c
	}

	for _, tc := range []struct {
		name  string
		start func(*testing.T) *textConn
		lines []string
	}{
		{"NOOP before TLS", plain, []string{"NOOP " + long(10_001)}},
		{"EHLO before TLS", plain, []string{"EHLO " + long(20_000)}},
		{"AUTH PLAIN initial response", afterTLS, []string{"AUTH PLAIN " + long(20_000)}},
		{"AUTH PLAIN after 334", afterTLS, []string{"AUTH PLAIN", long(20_000)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.start(t)
			for i, line := range tc.lines {
				c.send(line)
				if i < len(tc.lines)-1 {
					c.expect("334")
				}
			}
			c.expect("500 5.5.6 Line too long")
			c.send("NOOP")
			c.expect("250")
		})
	}
	if up.Connections() != 0 {
		t.Fatalf("the upstream was contacted %d times", up.Connections())
	}
}

// readToEnd reads what is left (buffered or not) until an error or d.
func readToEnd(c *textConn, d time.Duration) (string, error) {
	c.conn.SetReadDeadline(time.Now().Add(d))
	out := append([]byte(nil), c.buf...)
	b := make([]byte, 4096)
	for {
		n, err := c.conn.Read(b)
		out = append(out, b[:n]...)
		if err != nil {
			return string(out), err
		}
	}
}
