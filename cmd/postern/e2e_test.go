package main

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/testkit"
	"github.com/postern/postern/proxy/proxytest"
)

// TestEndToEndWithPostfix drives the built binary with real clients (swaks,
// msmtp, Python smtplib, go-smtp) against a private Postfix as the upstream.
func TestEndToEndWithPostfix(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	p := startPostern(t, pf.Addr)
	delivered := 0
	expectDelivered := func(t *testing.T, n int) []proxytest.Message {
		t.Helper()
		delivered += n
		return pf.WaitMessages(t, delivered, 30*time.Second)
	}

	t.Run("swaks STARTTLS, anonymous Received", func(t *testing.T) {
		out, code := swaks(t, p.swaksAuth(aliceLogin, alicePass,
			"--from", aliceLogin, "--to", "friend@example.test",
			"--add-header", "X-Originating-IP: [198.51.100.77]",
			"--header", "Subject: e2e-starttls")...)
		if code != 0 {
			t.Fatalf("swaks failed (%d):\n%s", code, out)
		}
		if !queuedByPostfix(out) {
			t.Fatalf("client did not get Postfix's queue id:\n%s", out)
		}
		msgs := expectDelivered(t, 1)
		m := findSubject(t, msgs, "e2e-starttls")
		data := string(m.Data)
		if !strings.HasPrefix(data, "Received: from [127.0.0.1] (localhost [127.0.0.1])\r\n\tby submission.test (Postern) with ESMTPSA id ") {
			t.Fatalf("no anonymous Received header first:\n%s", data)
		}
		if strings.Contains(data, "198.51.100.77") || strings.Contains(strings.ToLower(data), "x-originating-ip") {
			t.Fatalf("client address leaked:\n%s", data)
		}
		if m.ReturnPath != aliceLogin || m.Recipient != "friend@example.test" {
			t.Fatalf("envelope %q -> %q", m.ReturnPath, m.Recipient)
		}
	})

	t.Run("swaks implicit TLS", func(t *testing.T) {
		out, code := swaks(t, "--server", p.TLS, "--tlsc", "--auth", "LOGIN",
			"--auth-user", bobLogin, "--auth-password", bobPass,
			"--from", bobLogin, "--to", "friend@example.test", "--header", "Subject: e2e-implicit")
		if code != 0 {
			t.Fatalf("swaks failed (%d):\n%s", code, out)
		}
		findSubject(t, expectDelivered(t, 1), "e2e-implicit")
	})

	t.Run("swaks pipelining", func(t *testing.T) {
		out, code := swaks(t, p.swaksAuth(aliceLogin, alicePass, "--pipeline",
			"--from", aliceLogin, "--to", "a1@example.test,a2@example.test", "--header", "Subject: e2e-pipeline")...)
		if code != 0 {
			t.Fatalf("swaks failed (%d):\n%s", code, out)
		}
		msgs := expectDelivered(t, 2)
		if got := len(proxytest.MessagesTo(msgs, "a2@example.test")); got != 1 {
			t.Fatalf("a2 got %d messages", got)
		}
	})

	t.Run("msmtp", func(t *testing.T) {
		msmtp := testkit.RequireMsmtpTLS(t)
		host, port, _ := net.SplitHostPort(p.StartTLS)
		cmd := exec.Command(msmtp, "--host="+host, "--port="+port, "--tls=on", "--tls-starttls=on",
			"--tls-certcheck=off", "--auth=plain", "--user="+bobLogin, "--passwordeval=echo '"+bobPass+"'",
			"--from="+bobLogin, "friend@example.test")
		cmd.Stdin = strings.NewReader("Subject: e2e-msmtp\r\n\r\nhello from msmtp\r\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("msmtp: %v\n%s", err, out)
		}
		findSubject(t, expectDelivered(t, 1), "e2e-msmtp")
	})

	t.Run("python smtplib: SMTPUTF8 and several messages on one connection", func(t *testing.T) {
		python := testkit.RequirePythonSSL(t)
		script := fmt.Sprintf(`
import smtplib, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP(%q, %s, timeout=30)
s.starttls(context=ctx)
s.login(%q, %q)
for i in range(3):
    s.sendmail(%q, ["friend@example.test"], ("Subject: e2e-reuse-%%d\r\n\r\nbody\r\n" %% i).encode())
s.sendmail(%q, ["j\u00f6rg@example.test"], "Subject: e2e-utf8\r\n\r\nGr\u00fc\u00dfe\r\n".encode("utf-8"), mail_options=["SMTPUTF8"])
s.quit()
`, strings.Split(p.StartTLS, ":")[0], strings.Split(p.StartTLS, ":")[1], aliceLogin, alicePass, aliceLogin, aliceLogin)
		out, err := exec.Command(python, "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("python: %v\n%s", err, out)
		}
		msgs := expectDelivered(t, 4)
		for i := 0; i < 3; i++ {
			findSubject(t, msgs, fmt.Sprintf("e2e-reuse-%d", i))
		}
		if got := proxytest.MessagesTo(msgs, "jörg@example.test"); len(got) != 1 {
			t.Fatalf("SMTPUTF8 recipient got %d messages", len(got))
		}
	})

	t.Run("10 MB message arrives byte-exact", func(t *testing.T) {
		body := bigBody(10 << 20)
		c := dialAuth(t, p.StartTLS, aliceLogin, alicePass)
		defer c.Close()
		if err := c.SendMail(aliceLogin, []string{"big@example.test"}, bytes.NewReader(body)); err != nil {
			t.Fatal(err)
		}
		msgs := expectDelivered(t, 1)
		got := proxytest.MessagesTo(msgs, "big@example.test")
		if len(got) != 1 {
			t.Fatalf("big@ got %d messages", len(got))
		}
		data := got[0].Data
		i := bytes.Index(data, []byte("Subject: big"))
		if i < 0 || !bytes.Equal(data[i:], body) {
			t.Fatalf("10 MB message changed in transit (len %d, want %d after Received)", len(data)-i, len(body))
		}
	})

	t.Run("recipient refused by Postfix is passed on", func(t *testing.T) {
		out, _ := swaks(t, p.swaksAuth(aliceLogin, alicePass, "--from", aliceLogin, "--to", proxytest.RejectedRecipient)...)
		if !strings.Contains(out, "550 5.1.1") || !strings.Contains(out, "no such user here") {
			t.Fatalf("Postfix's refusal not passed on:\n%s", out)
		}
	})

	t.Run("sender not owned", func(t *testing.T) {
		out, _ := swaks(t, p.swaksAuth(aliceLogin, alicePass, "--from", bobLogin, "--to", "friend@example.test")...)
		if !strings.Contains(out, "553 5.7.1 Sender address rejected: not owned by user") {
			t.Fatalf("spoofed sender not refused:\n%s", out)
		}
	})

	t.Run("wrong password and unknown user get the same reply", func(t *testing.T) {
		for _, login := range []string{aliceLogin, "nobody@example.test"} {
			out, _ := swaks(t, p.swaksAuth(login, "wrong password", "--from", login, "--to", "friend@example.test")...)
			if !strings.Contains(out, "535 5.7.8 Authentication credentials invalid") {
				t.Fatalf("%s: want 535:\n%s", login, out)
			}
		}
	})

	t.Run("STARTTLS injection is discarded", func(t *testing.T) {
		conn, err := net.Dial("tcp", p.StartTLS)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c := smtpText(t, conn)
		c.expect("220")
		c.send("EHLO x.test")
		c.expect("250")
		c.send("STARTTLS\r\nMAIL FROM:<injected@example.test>")
		c.expect("220")
		tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		c = smtpText(t, tc)
		c.send("NOOP")
		// The first reply after the handshake must answer NOOP, not the injected MAIL.
		if line := c.expect("250"); !strings.Contains(line, "2.0.0") {
			t.Fatalf("unexpected first reply after TLS: %q", line)
		}
		c.send("MAIL FROM:<x@example.test>")
		c.expect("502") // "introduce yourself first": nothing from before TLS survived
	})

	t.Run("SMTP smuggling never splits a message at Postfix", func(t *testing.T) {
		before := len(pf.Messages(t))
		for name, payload := range map[string]string{
			"LF.LF": "\n.\n", "CRLF.LF": "\r\n.\n", "LF.CRLF": "\n.\r\n", "CR.CRLF": "\r.\r\n",
		} {
			c := dialTLSText(t, p.StartTLS, aliceLogin, alicePass)
			c.send("MAIL FROM:<" + aliceLogin + ">")
			c.expect("250")
			c.send("RCPT TO:<smuggle@example.test>")
			c.expect("250")
			c.send("DATA")
			c.expect("354")
			c.raw("Subject: smuggle\r\n\r\nhello" + payload +
				"MAIL FROM:<admin@example.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n")
			if line := c.expect("5"); !strings.Contains(line, "5.5.2") {
				t.Fatalf("%s: want a 5.5.2 refusal, got %q", name, line)
			}
		}
		time.Sleep(time.Second) // give Postfix time to deliver anything it wrongly accepted
		if after := len(pf.Messages(t)); after != before {
			t.Fatalf("smuggling payloads delivered %d messages", after-before)
		}
		if strings.Contains(pf.Log(), "victim@example.test") {
			t.Fatal("Postfix saw the smuggled recipient")
		}
	})

	t.Run("upstream down gives 4xx, and works again when it is back", func(t *testing.T) {
		pf.Stop()
		out, _ := swaks(t, p.swaksAuth(aliceLogin, alicePass, "--from", aliceLogin, "--to", "friend@example.test")...)
		if !strings.Contains(out, "451 4.4.1") {
			pf.Start()
			t.Fatalf("want 451 with the upstream down:\n%s", out)
		}
		pf.Start()
		out, code := swaks(t, p.swaksAuth(aliceLogin, alicePass, "--from", aliceLogin, "--to", "friend@example.test",
			"--header", "Subject: e2e-after-restart")...)
		if code != 0 {
			t.Fatalf("after restart (%d):\n%s", code, out)
		}
		findSubject(t, expectDelivered(t, 1), "e2e-after-restart")
	})

	t.Run("log lines", func(t *testing.T) {
		log := p.Log()
		for _, want := range []string{`msg="message accepted"`, `msg="auth failed"`, `msg=tls`, "client=127.0.0.1", `upstream`} {
			if !strings.Contains(log, want) {
				t.Errorf("log lacks %s", want)
			}
		}
		for _, secret := range []string{alicePass, bobPass, base64.StdEncoding.EncodeToString([]byte("\x00" + aliceLogin + "\x00" + alicePass))} {
			if strings.Contains(log, secret) {
				t.Fatalf("log contains a secret")
			}
		}
	})
}

// TestReloadOnSIGHUP changes the users file and the sender map under a
// running postern; a broken users file keeps the old one.
func TestReloadOnSIGHUP(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	dir := t.TempDir()
	senderMap := filepath.Join(dir, "senders")
	writeFile(t, senderMap, "shared@example.test alice@example.test\n")
	p := startPostern(t, pf.Addr, "--sender-map", senderMap)
	send := func(from string) string {
		out, _ := swaks(t, p.swaksAuth(aliceLogin, alicePass, "--from", from, "--to", "friend@example.test")...)
		return out
	}
	if out := send("shared@example.test"); !queuedByPostfix(out) {
		t.Fatalf("sender map not applied:\n%s", out)
	}
	writeFile(t, senderMap, "other@example.test alice@example.test\n")
	writeFile(t, p.UsersFile, "this line is broken\n")
	hup(t, p)
	if out := send("other@example.test"); !queuedByPostfix(out) {
		t.Fatalf("new sender map not used after SIGHUP:\n%s", out)
	}
	if out := send("shared@example.test"); !strings.Contains(out, "553 5.7.1") {
		t.Fatalf("old sender map still used after SIGHUP:\n%s", out)
	}
	if !strings.Contains(p.Log(), "users file kept as before") {
		t.Fatalf("broken users file not reported:\n%s", p.Log())
	}
}

func hup(t *testing.T, p *postern) {
	t.Helper()
	n := strings.Count(p.Log(), `msg=reloaded`)
	if err := p.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(p.Log(), `msg=reloaded`) == n {
		if time.Now().After(deadline) {
			t.Fatalf("no reload logged:\n%s", p.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func findSubject(t testing.TB, msgs []proxytest.Message, subject string) proxytest.Message {
	t.Helper()
	for _, m := range msgs {
		if bytes.Contains(m.Data, []byte("Subject: "+subject+"\r\n")) {
			return m
		}
	}
	t.Fatalf("no delivered message with Subject %q among %d", subject, len(msgs))
	return proxytest.Message{}
}

// bigBody returns a message of about size bytes with 76-character lines of
// base64, as a mail client sends an attachment.
func bigBody(size int) []byte {
	raw := make([]byte, size*3/4)
	rand.Read(raw)
	enc := base64.StdEncoding.EncodeToString(raw)
	var b bytes.Buffer
	b.WriteString("Subject: big\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	return b.Bytes()
}

func dialAuth(t testing.TB, addr, login, password string) *smtp.Client {
	t.Helper()
	c, err := smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", login, password)); err != nil {
		t.Fatal(err)
	}
	return c
}

// textConn is a minimal line-level SMTP client for payloads real clients
// refuse to send.
type textConn struct {
	t    testing.TB
	conn net.Conn
	buf  []byte
}

func smtpText(t testing.TB, conn net.Conn) *textConn { return &textConn{t: t, conn: conn} }

func (c *textConn) raw(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *textConn) send(line string) { c.t.Helper(); c.raw(line + "\r\n") }

// expect reads up to the last line of one reply and checks its prefix.
func (c *textConn) expect(prefix string) string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		if i := bytes.Index(c.buf, []byte("\r\n")); i >= 0 {
			line := string(c.buf[:i])
			c.buf = c.buf[i+2:]
			if len(line) >= 4 && line[3] == '-' {
				continue
			}
			if !strings.HasPrefix(line, prefix) {
				c.t.Fatalf("want reply %q..., got %q", prefix, line)
			}
			return line
		}
		b := make([]byte, 4096)
		n, err := c.conn.Read(b)
		if err != nil {
			c.t.Fatalf("reading reply (want %q): %v", prefix, err)
		}
		c.buf = append(c.buf, b[:n]...)
	}
}

func dialTLSText(t testing.TB, addr, login, password string) *textConn {
	t.Helper()
	c := dialStartTLSText(t, addr)
	c.send("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+login+"\x00"+password)))
	c.expect("235")
	return c
}
