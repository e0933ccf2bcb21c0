package proxy

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testClient speaks raw SMTP so tests can check exact replies and send what
// well-behaved client libraries refuse to send (bare LF, NUL, pipelining).
type testClient struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dialClient(t testing.TB, addr string, implicitTLS bool) *testClient {
	t.Helper()
	var conn net.Conn
	var err error
	if implicitTLS {
		conn, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
			&tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	} else {
		conn, err = net.DialTimeout("tcp", addr, 5*time.Second)
	}
	if err != nil {
		t.Fatalf("dialing %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &testClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.expect(220, "")
	return c
}

// sendRaw writes bytes as they are.
func (c *testClient) sendRaw(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Fatalf("writing %q: %v", s, err)
	}
}

func (c *testClient) send(line string) { c.t.Helper(); c.sendRaw(line + "\r\n") }

// reply reads one (possibly multi-line) reply and returns its code and text.
func (c *testClient) reply() (int, string) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	var text []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading reply: %v (so far %q)", err, text)
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 4 {
			c.t.Fatalf("short reply line %q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil {
			c.t.Fatalf("bad reply line %q", line)
		}
		text = append(text, line[4:])
		if line[3] == ' ' {
			return code, strings.Join(text, "\n")
		}
	}
}

// expect reads a reply and fails unless it has the code and contains want.
func (c *testClient) expect(code int, want string) string {
	c.t.Helper()
	got, text := c.reply()
	if got != code || !strings.Contains(text, want) {
		c.t.Fatalf("want %d %q, got %d %q", code, want, got, text)
	}
	return text
}

func (c *testClient) cmd(line string, code int, want string) string {
	c.t.Helper()
	c.send(line)
	return c.expect(code, want)
}

// closed reports whether the server has closed the connection.
func (c *testClient) closed() bool {
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.r.ReadByte()
	return err != nil
}

func (c *testClient) startTLS() {
	c.t.Helper()
	c.cmd("STARTTLS", 220, "")
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.conn = tc
	c.r = bufio.NewReader(tc)
}

func (c *testClient) authPlain(login, password string, code int, want string) {
	c.t.Helper()
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + login + "\x00" + password))
	c.cmd("AUTH PLAIN "+ir, code, want)
}

// ready connects, says EHLO, upgrades and authenticates.
func (c *testClient) ready(login, password string) *testClient {
	c.t.Helper()
	c.cmd("EHLO client.test", 250, "")
	c.startTLS()
	c.cmd("EHLO client.test", 250, "AUTH PLAIN LOGIN")
	if login != "" {
		c.authPlain(login, password, 235, "")
	}
	return c
}

// sendMessage runs MAIL, RCPT... and DATA with body (CRLF lines, no final dot).
func (c *testClient) sendMessage(from string, to []string, body string) (int, string) {
	c.t.Helper()
	c.cmd("MAIL FROM:<"+from+">", 250, "")
	for _, rcpt := range to {
		c.cmd("RCPT TO:<"+rcpt+">", 250, "")
	}
	c.cmd("DATA", 354, "")
	c.sendRaw(body + ".\r\n")
	return c.reply()
}
