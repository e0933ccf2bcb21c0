package upstream

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/textproto"
	"strings"
	"time"
)

// Identity is what Postern may pass on about the client (XCLIENT).
type Identity struct {
	Login string
	Addr  netip.Addr // only in --received full
}

// upstreamPreamble speaks XCLIENT (Postfix XCLIENT_README), which go-smtp's
// client cannot send, and, with --upstream-tls starttls, STARTTLS before it:
// Postfix wants XCLIENT inside TLS, and its 220 reply restarts the session,
// so the order is greeting, EHLO, STARTTLS, EHLO, XCLIENT. It returns a
// connection positioned so that go-smtp's client reads that 220 greeting
// next and sends the session's EHLO itself. All of it must end by deadline.
// Without XCLIENT, Dial leaves STARTTLS to go-smtp.
func upstreamPreamble(conn net.Conn, cfg Config, id Identity, deadline time.Time) (net.Conn, error) {
	conn.SetDeadline(deadline)
	defer conn.SetDeadline(time.Time{})
	br := bufio.NewReader(conn)
	tr := textproto.NewReader(br)
	cmd := func(line string, want int) (string, error) {
		if _, err := fmt.Fprintf(conn, "%s\r\n", line); err != nil {
			return "", fmt.Errorf("upstream %s: sending %s: %w", cfg.Addr, strings.Fields(line)[0], err)
		}
		_, msg, err := tr.ReadResponse(want)
		if err != nil {
			return "", fmt.Errorf("upstream %s: %s: %w", cfg.Addr, strings.Fields(line)[0], err)
		}
		return msg, nil
	}
	if _, err := readGreeting(tr, cfg.Addr); err != nil {
		return nil, err
	}
	ehlo, err := cmd("EHLO "+cfg.HeloName, 250)
	if err != nil {
		return nil, err
	}
	if cfg.TLS == "starttls" {
		if !hasExtension(ehlo, "STARTTLS") {
			return nil, fmt.Errorf("upstream %s does not offer STARTTLS", cfg.Addr)
		}
		if _, err := cmd("STARTTLS", 220); err != nil {
			return nil, err
		}
		if br.Buffered() > 0 { // RFC 3207 §4.2: nothing may follow the 220 in clear text
			return nil, fmt.Errorf("upstream %s sent data after its STARTTLS reply", cfg.Addr)
		}
		tc := tls.Client(conn, upstreamTLSConfig(cfg))
		tc.SetDeadline(deadline)
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("STARTTLS with upstream %s: %w", cfg.Addr, err)
		}
		conn = tc
		br = bufio.NewReader(conn)
		tr = textproto.NewReader(br)
		if ehlo, err = cmd("EHLO "+cfg.HeloName, 250); err != nil {
			return nil, err
		}
	}
	if !hasExtension(ehlo, "XCLIENT") {
		return nil, fmt.Errorf("upstream %s does not offer XCLIENT to Postern (Postfix: smtpd_authorized_xclient_hosts)", cfg.Addr)
	}
	line := "XCLIENT LOGIN=" + xtext(id.Login)
	if id.Addr.IsValid() {
		line += " ADDR=" + xtext(id.Addr.String())
	}
	// A successful XCLIENT is answered with a new 220 greeting.
	greeting, err := cmd(line, 220)
	if err != nil {
		return nil, err
	}
	// go-smtp's client starts by reading a greeting: give it the last one
	// again, followed by anything still buffered.
	rest, _ := br.Peek(br.Buffered())
	replay := append([]byte("220 "+strings.ReplaceAll(greeting, "\n", " ")+"\r\n"), rest...)
	return &replayConn{Conn: conn, r: io.MultiReader(bytes.NewReader(replay), conn)}, nil
}

func readGreeting(tr *textproto.Reader, addr string) (string, error) {
	_, msg, err := tr.ReadResponse(220)
	if err != nil {
		return "", fmt.Errorf("upstream %s greeting: %w", addr, err)
	}
	return msg, nil
}

// hasExtension looks for an EHLO keyword in a 250 reply's text.
func hasExtension(ehlo, name string) bool {
	for _, line := range strings.Split(ehlo, "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.EqualFold(f[0], name) {
			return true
		}
	}
	return false
}

// xtext encodes an XCLIENT attribute value (RFC 3461 §4): "+", "=" and
// anything outside printable ASCII become +HH.
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 33 || c > 126 || c == '+' || c == '=' {
			fmt.Fprintf(&b, "+%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// replayConn reads from r (replayed bytes, then the connection) and
// otherwise is the connection.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(b []byte) (int, error) { return c.r.Read(b) }
