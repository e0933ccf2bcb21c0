package main

// Commands out of sequence (issue 18, item 1) and command lines too long
// (item 8), through the built binary and against the real Postfix.

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/auth/authtest"
	"github.com/postern/postern/proxy"
	"github.com/postern/postern/proxy/proxytest"
)

// seqStep is one command (with a BDAT chunk, its bytes) and the start of
// the reply both Postern and Postfix must give it: the code, and for a
// refusal the enhanced code.
type seqStep struct{ send, want string }

// sequenceCases: every command out of sequence, with the replies Postfix
// (smtpd as submission: TLS, SASL) gives, each case on a fresh session
// that has logged in (unless noLogin) and ending with a NOOP answered 250,
// so that nothing was left in the stream.
func sequenceCases() []struct {
	name    string
	noLogin bool
	steps   []seqStep
} {
	mail := seqStep{"MAIL FROM:<" + aliceLogin + ">\r\n", "250"}
	rcpt := seqStep{"RCPT TO:<friend@example.test>\r\n", "250"}
	auth := seqStep{authPlainLine(aliceLogin, alicePass), "503 5.5.1"}
	data := []seqStep{{"DATA\r\n", "354"}, {"Subject: sequence\r\n\r\nhi\r\n.\r\n", "250"}}
	chunk := seqStep{"BDAT 5\r\nhello", "250"}
	lastChunk := seqStep{"BDAT 0 LAST\r\n", "250"}
	steps := func(s ...any) []seqStep {
		var out []seqStep
		for _, x := range s {
			switch x := x.(type) {
			case seqStep:
				out = append(out, x)
			case []seqStep:
				out = append(out, x...)
			}
		}
		return out
	}
	return []struct {
		name    string
		noLogin bool
		steps   []seqStep
	}{
		{"RCPT before MAIL", false, steps(seqStep{rcpt.send, "503 5.5.1"})},
		{"DATA before MAIL", false, steps(seqStep{"DATA\r\n", "503 5.5.1"})},
		{"BDAT before MAIL", false, steps(seqStep{"BDAT 5 LAST\r\nhello", "503 5.5.1"})},
		{"MAIL inside a transaction", false, steps(mail, seqStep{mail.send, "503 5.5.1"})},
		{"MAIL inside a transaction after RCPT", false, steps(mail, rcpt, seqStep{mail.send, "503 5.5.1"})},
		{"DATA without RCPT", false, steps(mail, seqStep{"DATA\r\n", "554 5.5.1"})},
		{"DATA after the only RCPT was refused", false, steps(mail,
			seqStep{"RCPT TO:<" + proxytest.RejectedRecipient + ">\r\n", "550 5.1.1"}, seqStep{"DATA\r\n", "554 5.5.1"})},
		{"BDAT without RCPT", false, steps(mail, seqStep{"BDAT 5 LAST\r\nhello", "554 5.5.1"})},
		{"AUTH inside a transaction", false, steps(mail, auth)},
		{"AUTH inside a transaction before logging in", true, steps(mail, auth)},
		{"RCPT after DATA", false, steps(mail, rcpt, data, seqStep{rcpt.send, "503 5.5.1"})},
		{"BDAT after DATA", false, steps(mail, rcpt, data, seqStep{"BDAT 5 LAST\r\nhello", "503 5.5.1"})},
		{"DATA after a BDAT chunk", false, steps(mail, rcpt, chunk, seqStep{"DATA\r\n", "503 5.5.1"}, lastChunk)},
		{"MAIL after a BDAT chunk", false, steps(mail, rcpt, chunk, seqStep{mail.send, "503 5.5.1"}, lastChunk)},
		{"RCPT after a BDAT chunk", false, steps(mail, rcpt, chunk, seqStep{rcpt.send, "503 5.5.1"}, lastChunk)},
	}
}

// TestCommandSequenceE2E runs sequenceCases against Postern and against
// Postfix's own submission service (smtpd with smtpd_tls_security_level =
// encrypt, SASL through a real Dovecot): the same commands must get the
// same reply codes and enhanced codes from both. Before, Postern answered a
// MAIL inside a transaction 250 (the upstream MAIL travels with the first
// RCPT, so no upstream refused it either), AUTH inside a transaction ran,
// and the other cases got 502 instead of 503 or 554.
func TestCommandSequenceE2E(t *testing.T) {
	t.Parallel()
	dovecot := authtest.StartDovecot(t, []authtest.User{{Login: aliceLogin, Password: alicePass}})
	dir := opsPublicDir(t)
	certFile, keyFile := filepath.Join(dir, "postfix.pem"), filepath.Join(dir, "postfix.key")
	opsWriteCert(t, certFile, keyFile, time.Now().Add(24*time.Hour))
	submission := proxytest.StartPostfix(t, proxytest.PostfixOptions{MainCF: []string{
		"smtpd_tls_cert_file = " + certFile,
		"smtpd_tls_key_file = " + keyFile,
		"smtpd_tls_security_level = encrypt",
		"smtpd_tls_auth_only = yes",
		"smtpd_sasl_auth_enable = yes",
		"smtpd_sasl_type = dovecot",
		"smtpd_sasl_path = inet:" + dovecot.TCPAddr,
		"smtpd_relay_restrictions = permit_sasl_authenticated, reject",
	}})
	upstream := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	// --mynetworks: a client that sends MAIL without logging in.
	p := startPostern(t, upstream.Addr, "--mynetworks", "127.0.0.1/32")

	for _, target := range []struct{ name, addr string }{{"postern", p.StartTLS}, {"postfix", submission.Addr}} {
		for _, tc := range sequenceCases() {
			t.Run(target.name+"/"+tc.name, func(t *testing.T) {
				c := dialStartTLSText(t, target.addr)
				if !tc.noLogin {
					c.raw(authPlainLine(aliceLogin, alicePass))
					c.expect("235")
				}
				for _, s := range append(tc.steps, seqStep{"NOOP\r\n", "250"}) {
					c.raw(s.send)
					if line := c.expect(s.want[:3]); !strings.HasPrefix(line, s.want) {
						t.Fatalf("%q: got %q, want %q...", strings.TrimSpace(s.send), line, s.want)
					}
				}
			})
		}
	}
}

// dialStartTLSText connects, upgrades with STARTTLS and says EHLO again.
func dialStartTLSText(t testing.TB, addr string) *textConn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := smtpText(t, conn)
	c.expect("220")
	c.send("EHLO x.test")
	c.expect("250")
	c.send("STARTTLS")
	c.expect("220")
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c = smtpText(t, tc)
	c.send("EHLO x.test")
	c.expect("250")
	return c
}

// TestNestedMailNotCountedE2E: a MAIL refused as nested counts toward no
// sending limit. Before, the second MAIL of a transaction got 250 and took
// a second message of --limit-messages.
func TestNestedMailNotCountedE2E(t *testing.T) {
	t.Parallel()
	up := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	p := startPostern(t, up.Addr, "--limit-messages", "2/1h")
	c := dialTLSText(t, p.StartTLS, aliceLogin, alicePass)
	mail := "MAIL FROM:<" + aliceLogin + ">"
	c.send(mail)
	c.expect("250")
	for i := 0; i < 3; i++ {
		c.send(mail)
		c.expect("503 5.5.1")
	}
	c.send("RSET")
	c.expect("250")
	c.send(mail) // the second message of the window
	c.expect("250")
	c.send("RSET")
	c.expect("250")
	c.send(mail) // the third
	c.expect("451 4.7.1")
}

// TestLongCommandLineE2E: a command line of 1 MiB (and of half the skip
// budget) without a newline, then its newline: Postern reads it to its end,
// answers "500 5.5.6 Line too long" and the session goes on, as the real
// Postfix reads it to its end, answers (it runs the line cut to
// line_length_limit: NOOP gets 250) and goes on. Before, Postern closed after
// reading 64 KiB more: the client, still writing, got a reset and no reply.
// A line longer than proxy.MaxCommandLineSkip ends the connection: the
// client's writes fail, Postern does not read on for ever.
func TestLongCommandLineE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	p := startPostern(t, pf.Addr)

	plain := func(t *testing.T, addr string) *textConn {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		c := smtpText(t, conn)
		c.expect("220")
		c.send("EHLO x.test")
		c.expect("250")
		return c
	}
	// longLine writes "NOOP " and n bytes, then the newline, all before
	// reading anything, as a client that writes its line and then reads.
	longLine := func(c *textConn, n int) error {
		c.conn.SetWriteDeadline(time.Now().Add(2 * time.Minute))
		chunk := []byte(strings.Repeat("QUFB", 16<<10))
		if _, err := c.conn.Write([]byte("NOOP ")); err != nil {
			return err
		}
		for sent := 0; sent < n; sent += len(chunk) {
			if _, err := c.conn.Write(chunk); err != nil {
				return err
			}
		}
		_, err := c.conn.Write([]byte("\r\n"))
		return err
	}

	for _, n := range []int{1 << 20, proxy.MaxCommandLineSkip / 2} {
		for _, target := range []struct{ name, addr, want string }{
			{"postern", p.StartTLS, "500 5.5.6 Line too long"}, {"postfix", pf.Addr, "250"},
		} {
			t.Run(fmt.Sprintf("%s/%d MiB", target.name, n>>20), func(t *testing.T) {
				c := plain(t, target.addr)
				if err := longLine(c, n); err != nil {
					t.Fatalf("writing the line: %v", err)
				}
				c.expect(target.want)
				c.send("NOOP")
				c.expect("250")
			})
		}
	}

	t.Run("postern/AUTH line after 334", func(t *testing.T) {
		c := dialStartTLSText(t, p.StartTLS)
		c.send("AUTH PLAIN")
		c.expect("334")
		c.raw(strings.Repeat("QUFB", 1<<18) + "\r\n")
		c.expect("500 5.5.6")
		c.raw(authPlainLine(aliceLogin, alicePass))
		c.expect("235")
	})

	t.Run("postern/over the budget", func(t *testing.T) {
		// Whether the client's writes fail depends on how much of the
		// rest the two sockets' buffers took in (several MiB on
		// loopback), so that is not the test: the connection must end,
		// with no reply that lets the session go on.
		c := plain(t, p.StartTLS)
		err := longLine(c, proxy.MaxCommandLineSkip+(32<<20))
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Postern stopped reading without closing: %v", err)
		}
		out, err := readToEnd(c, 10*time.Second)
		if err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("after the line: %q, %v; want the end of the connection", out, err)
		}
		if strings.Contains(out, "250") {
			t.Fatalf("after the line: %q; the session went on past the budget", out)
		}
	})

	t.Run("postern/dribbled past --command-timeout", func(t *testing.T) {
		// Every byte renews the idle deadline; the line's end must
		// still come within --command-timeout.
		short := startPostern(t, pf.Addr, "--command-timeout", "2s")
		c := plain(t, short.StartTLS)
		c.raw("NOOP " + strings.Repeat("x", 3000))
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond):
				}
				c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.conn.Write([]byte("x")); err != nil {
					return
				}
			}
		}()
		c.expect("500 5.5.6 Line too long")
		if out, err := readToEnd(c, 30*time.Second); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("after the reply: %q, %v; want the end of the connection", out, err)
		}
	})
}
