package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testkit"
	"github.com/postern/postern/proxy/proxytest"
)

// Issue 24: what Postfix takes from a real client, Postern takes too. Bare-LF
// line ends are normalised to CRLF (Postfix's smtpd_forbid_bare_newline =
// normalize), lines are bounded only by the message size, and a refused
// message leaves the session usable.

// afterReceived is a delivered message as the client sent it: Data without
// Postern's Received header, which must come first.
func afterReceived(t testing.TB, m proxytest.Message) []byte {
	t.Helper()
	data := m.Data
	if !bytes.HasPrefix(data, []byte("Received: ")) {
		t.Fatalf("no Received header first: %.200q", data)
	}
	for {
		i := bytes.Index(data, []byte("\r\n"))
		if i < 0 {
			t.Fatalf("unterminated Received header: %.200q", m.Data)
		}
		data = data[i+2:]
		if len(data) == 0 || (data[0] != ' ' && data[0] != '\t') {
			return data
		}
	}
}

// withSubject returns the one message whose Subject is subject (it fails
// the test if there are none or several).
func withSubject(t testing.TB, msgs []proxytest.Message, subject string) proxytest.Message {
	t.Helper()
	var found []proxytest.Message
	for _, m := range msgs {
		if bytes.Contains(m.Data, []byte("Subject: "+subject+"\r\n")) {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d delivered messages with Subject %q, want 1", len(found), subject)
	}
	return found[0]
}

// TestBareLFClientsE2E: curl -T (no --crlf) and Python smtplib with a bytes
// message send LF line ends; through Postern, Postfix delivers exactly what
// it delivers when the same client talks to it directly, which is the
// message with CRLF line ends and its dots unstuffed.
func TestBareLFClientsE2E(t *testing.T) {
	t.Parallel()
	curl := testkit.RequireTool(t, "curl")
	python := testkit.RequirePythonSSL(t)
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	p := startPostern(t, pf.Addr)
	delivered := 0

	// direct and proxied each send one message with the given subject,
	// the first to Postfix itself, the second through Postern.
	check := func(t *testing.T, name string, direct, proxied func(subject string), want string) {
		direct(name + "-direct")
		proxied(name + "-postern")
		delivered += 2
		msgs := pf.WaitMessages(t, delivered, 30*time.Second)
		// The subjects (also in Message-ID) are the only difference.
		viaPostfix := strings.ReplaceAll(string(withSubject(t, msgs, name+"-direct").Data), name+"-direct", "SUBJECT")
		viaPostern := strings.ReplaceAll(string(afterReceived(t, withSubject(t, msgs, name+"-postern"))), name+"-postern", "SUBJECT")
		if viaPostern != viaPostfix {
			t.Fatalf("through Postern Postfix delivered\n%q\ndirectly\n%q", viaPostern, viaPostfix)
		}
		if viaPostern != want {
			t.Fatalf("delivered %q, want %q", viaPostern, want)
		}
	}

	t.Run("curl -T with LF line ends", func(t *testing.T) {
		// curl sends the file as it is and adds "\r\n.\r\n"; it stuffs
		// dots only after CRLF, so a line after a bare LF loses its first
		// dot, at Postfix as through Postern (curl's --crlf avoids that).
		msg := func(subject string) string {
			return "Subject: " + subject + "\nMessage-ID: <" + subject + "@example.test>\nDate: Mon, 7 Dec 2026 12:00:00 +0000\n" +
				"From: " + aliceLogin + "\n\nhello\n.starts with a dot\n..two dots\nend\n"
		}
		run := func(subject string, args ...string) {
			cmd := exec.Command(curl, append([]string{"--silent", "--show-error", "--max-time", "30",
				"--mail-from", aliceLogin, "--mail-rcpt", "friend@example.test", "-T", "-"}, args...)...)
			cmd.Stdin = strings.NewReader(msg(subject))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("curl %q: %v\n%s", args, err, out)
			}
		}
		check(t, "curl-lf",
			func(subject string) { run(subject, "smtp://"+pf.Addr+"/client.test") },
			func(subject string) {
				run(subject, "--ssl-reqd", "--insecure", "--user", aliceLogin+":"+alicePass, "smtp://"+p.StartTLS+"/client.test")
			},
			"Subject: SUBJECT\r\nMessage-ID: <SUBJECT@example.test>\r\nDate: Mon, 7 Dec 2026 12:00:00 +0000\r\n"+
				"From: "+aliceLogin+"\r\n\r\nhello\r\nstarts with a dot\r\n.two dots\r\nend\r\n\r\n")
	})

	t.Run("python smtplib sendmail with bytes", func(t *testing.T) {
		// smtplib stuffs a dot at the start of every line, after a bare
		// LF too, and adds "\r\n.\r\n".
		run := func(addr string, login bool, subject string) {
			host, port, _ := strings.Cut(addr, ":")
			script := fmt.Sprintf(`
import smtplib, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP(%q, %s, timeout=30)
if %s:
    s.starttls(context=ctx)
    s.login(%q, %q)
msg = b"Subject: %s\nMessage-ID: <%s@example.test>\nDate: Mon, 7 Dec 2026 12:00:00 +0000\nFrom: %s\n\nGr\xc3\xbc\xc3\x9fe\n.a dot\n..two\n.\tdot tab\nend"
s.sendmail(%q, ["friend@example.test"], msg)
s.quit()
`, host, port, map[bool]string{true: "True", false: "False"}[login], aliceLogin, alicePass,
				subject, subject, aliceLogin, aliceLogin)
			if out, err := exec.Command(python, "-c", script).CombinedOutput(); err != nil {
				t.Fatalf("python: %v\n%s", err, out)
			}
		}
		check(t, "py-lf",
			func(subject string) { run(pf.Addr, false, subject) },
			func(subject string) { run(p.StartTLS, true, subject) },
			"Subject: SUBJECT\r\nMessage-ID: <SUBJECT@example.test>\r\nDate: Mon, 7 Dec 2026 12:00:00 +0000\r\n"+
				"From: "+aliceLogin+"\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n.a dot\r\n..two\r\n.\tdot tab\r\nend\r\n")
	})
}

// TestLongLinesE2E: lines of 5,000 and 100,000 characters (unwrapped HTML,
// as PHP mail() sends it) are delivered as they are, under DATA and BDAT,
// and the session goes on: Postfix does the same.
func TestLongLinesE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	p := startPostern(t, pf.Addr)
	c := dialTLSText(t, p.StartTLS, aliceLogin, alicePass)
	var want []string
	for i, size := range []int{5000, 100000} {
		for _, bdat := range []bool{false, true} {
			subject := fmt.Sprintf("long-%d-bdat-%t", size, bdat)
			line := strings.Repeat(string(rune('a'+i)), size)
			msg := "Subject: " + subject + "\r\n\r\n<p>" + line + "</p>\r\nend\r\n"
			c.send("MAIL FROM:<" + aliceLogin + ">")
			c.expect("250")
			c.send("RCPT TO:<long@example.test>")
			c.expect("250")
			if bdat {
				c.raw(fmt.Sprintf("BDAT %d LAST\r\n%s", len(msg), msg))
			} else {
				c.send("DATA")
				c.expect("354")
				c.raw(msg + ".\r\n")
			}
			c.expect("250")
			want = append(want, msg)
		}
	}
	c.send("NOOP")
	c.expect("250")
	msgs := pf.WaitMessages(t, len(want), 60*time.Second)
	for _, msg := range want {
		subject := strings.TrimPrefix(msg[:strings.Index(msg, "\r\n")], "Subject: ")
		if got := afterReceived(t, withSubject(t, msgs, subject)); string(got) != msg {
			t.Fatalf("%s: delivered %d bytes, want the %d sent: %.100q...", subject, len(got), len(msg), got)
		}
	}
}

// TestRefusedMessageSessionGoesOnE2E: after each kind of refused message
// (NUL, over the size limit, bare CR, a "." line next to a bare LF) the
// same session sends a good message, with a long line, and Postfix gets
// exactly the good ones; each refused one is logged with the bytes the
// client sent.
func TestRefusedMessageSessionGoesOnE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	p := startPostern(t, pf.Addr, "--max-message-size", "200000")
	c := dialTLSText(t, p.StartTLS, aliceLogin, alicePass)
	rest := strings.Repeat(strings.Repeat("r", 98)+"\r\n", 100) // after the fault: still counted in the log
	refused := []struct {
		name, body, reply string
		size              int // logged
	}{
		{"NUL", "Subject: refused-nul\r\n\r\na\x00b\r\n" + rest, "554 5.6.0", 0},
		{"over the size limit", "Subject: refused-size\r\n\r\n" + strings.Repeat(strings.Repeat("x", 998)+"\r\n", 300), "552 5.3.4", 200000},
		{"over the size limit in one line", "Subject: refused-size-line\r\n\r\n" + strings.Repeat("x", 300000) + "\r\n", "552 5.3.4", 200000},
		{"bare CR", "Subject: refused-cr\r\n\r\na\rb\r\n" + rest, "554 5.5.2", 0},
		{"dot line after a bare LF", "Subject: refused-dot\r\n\r\na\n.\nb\r\n" + rest, "554 5.5.2", 0},
	}
	for i, r := range refused {
		c.send("MAIL FROM:<" + aliceLogin + ">")
		c.expect("250")
		c.send("RCPT TO:<next@example.test>")
		c.expect("250")
		c.send("DATA")
		c.expect("354")
		c.raw(r.body + ".\r\n")
		if line := c.expect("5"); !strings.HasPrefix(line, r.reply) {
			t.Fatalf("%s: reply %q, want %s", r.name, line, r.reply)
		}
		c.send("MAIL FROM:<" + aliceLogin + ">")
		c.expect("250")
		c.send("RCPT TO:<next@example.test>")
		c.expect("250")
		c.send("DATA")
		c.expect("354")
		c.raw(fmt.Sprintf("Subject: next-%d\r\n\r\n%s\r\n.\r\n", i, strings.Repeat("y", 5000)))
		c.expect("250")
	}
	pf.WaitMessages(t, len(refused), 30*time.Second)
	time.Sleep(time.Second) // anything wrongly accepted would be delivered by now
	msgs := pf.Messages(t)
	if len(msgs) != len(refused) {
		t.Fatalf("Postfix delivered %d messages, want %d", len(msgs), len(refused))
	}
	for i := range refused {
		withSubject(t, msgs, fmt.Sprintf("next-%d", i))
	}
	// A refused message is logged with the bytes received (up to the size
	// limit), not those read before the refusal.
	var rejected []string
	for _, line := range strings.Split(p.Log(), "\n") {
		if strings.Contains(line, `msg="message rejected"`) {
			rejected = append(rejected, line)
		}
	}
	if len(rejected) != len(refused) {
		t.Fatalf("%d messages logged as rejected, want %d:\n%s", len(rejected), len(refused), p.Log())
	}
	for i, r := range refused {
		size := r.size
		if size == 0 {
			size = len(r.body)
		}
		if !strings.Contains(rejected[i], fmt.Sprintf(" size=%d ", size)) {
			t.Fatalf("%s: logged %q, want size=%d", r.name, rejected[i], size)
		}
	}
}

// smuggleTail follows the payload under test: if anything before it ended
// the message at the upstream, Postfix would run it as a second transaction.
const smuggleTail = "MAIL FROM:<admin@example.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\n" +
	"Subject: smuggled\r\n\r\nevil\r\n.\r\n"

// expectedMix is what Postern must do with a message (under DATA: the
// message as the DATA reader ends it, the final ".\r\n" left off), stated
// line by line, independently of the code: lines end with CRLF or a bare LF,
// and are passed on ended by CRLF; a bare CR is refused. Under DATA only, a
// leading dot is removed (dot-stuffing), and a "." line next to a bare LF,
// or an empty line ended by a bare LF after CRLF (the DATA reader cannot
// tell it from "\r\n.\n"), is refused. ok is false for a refusal.
func expectedMix(msg string, data bool) (want string, ok bool) {
	var b strings.Builder
	prevBareLF := false
	for rest := msg; rest != ""; {
		i := strings.IndexByte(rest, '\n')
		text, bareLF := rest[:i], !strings.HasSuffix(rest[:i], "\r")
		text = strings.TrimSuffix(text, "\r")
		rest = rest[i+1:]
		switch {
		case strings.Contains(text, "\r"):
			return "", false
		case data && text == "." && (bareLF || prevBareLF):
			return "", false
		case data && text == "" && bareLF && !prevBareLF:
			return "", false
		}
		if data {
			text = strings.TrimPrefix(text, ".")
		}
		b.WriteString(text + "\r\n")
		prevBareLF = bareLF
	}
	return b.String(), true
}

// mixPayloads are the named payloads, then every sequence of 1 to 5 of CR,
// LF and dot. Under DATA those holding CRLF.CRLF after "hello" are left
// out: a real end of data, where Postern and Postfix agree the tail is
// commands.
func mixPayloads(data bool) []string {
	payloads := []string{"\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r", "\r.\r\n", "\n..\n", "\r\n..\n", "\n..x\n",
		"\n.\r\r\n", "\r\n.\r\r\n", "\n\r\n.\n", ".\n.\n", "\n\n.\n\n", "\r\n.\r\n"}
	alphabet := []string{"\r", "\n", "."}
	level := []string{""}
	for n := 1; n <= 5; n++ {
		var next []string
		for _, s := range level {
			for _, c := range alphabet {
				next = append(next, s+c)
			}
		}
		payloads = append(payloads, next...)
		level = next
	}
	var out []string
	for _, p := range payloads {
		if !data || !strings.Contains("hello"+p, "\r\n.\r\n") {
			out = append(out, p)
		}
	}
	return out
}

// TestSmugglingMixesE2E sends "hello" + payload + a second transaction as
// one message, under DATA and under BDAT, for named payloads and every
// short mix of CR, LF and dots, through the binary into the real Postfix.
// Every message gets exactly one reply, the one expectedMix predicts; every
// accepted one is exactly one message at Postfix, with the body expectedMix
// predicts (the tail included); the smuggled recipient is never seen.
func TestSmugglingMixesE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	p := startPostern(t, pf.Addr, "--limit-messages", "*", "--limit-recipients", "*")
	wants := map[string]string{}
	c := dialTLSText(t, p.StartTLS, aliceLogin, alicePass)
	for _, data := range []bool{true, false} {
		payloads := mixPayloads(data)
		accepted := 0
		for i, payload := range payloads {
			subject := fmt.Sprintf("mix-%d-data-%t", i, data)
			msg := "Subject: " + subject + "\r\n\r\nhello" + payload + smuggleTail
			c.send("MAIL FROM:<" + aliceLogin + ">")
			c.expect("250")
			c.send("RCPT TO:<mix@example.test>")
			c.expect("250")
			want, ok := expectedMix(msg, false)
			if data {
				want, ok = expectedMix(strings.TrimSuffix(msg, ".\r\n"), true)
				c.send("DATA")
				c.expect("354")
				c.raw(msg)
			} else {
				c.raw(fmt.Sprintf("BDAT %d LAST\r\n%s", len(msg), msg))
			}
			reply := c.expect("")
			switch {
			case ok && !strings.HasPrefix(reply, "250 "):
				t.Fatalf("payload %q (DATA %t): reply %q, want 250", payload, data, reply)
			case !ok && !strings.HasPrefix(reply, "554 5.5.2 "):
				t.Fatalf("payload %q (DATA %t): reply %q, want 554 5.5.2", payload, data, reply)
			}
			if ok {
				wants[subject] = want
				accepted++
			}
			// One reply per message: the next reply answers this
			// NOOP, not a command of the tail.
			c.send("NOOP")
			if line := c.expect("250"); !strings.Contains(line, "2.0.0") {
				t.Fatalf("payload %q (DATA %t): the reply after the message is %q, not NOOP's", payload, data, line)
			}
		}
		t.Logf("DATA %t: %d payloads, %d accepted", data, len(payloads), accepted)
	}
	pf.WaitMessages(t, len(wants), 60*time.Second)
	time.Sleep(time.Second) // anything wrongly accepted would be delivered by now
	msgs := pf.Messages(t)
	if len(msgs) != len(wants) {
		t.Fatalf("Postfix delivered %d messages, want %d (one per accepted message)", len(msgs), len(wants))
	}
	for subject, want := range wants {
		if got := afterReceived(t, withSubject(t, msgs, subject)); string(got) != want {
			t.Fatalf("%s: delivered %q, want %q", subject, got, want)
		}
	}
	for _, m := range msgs {
		if m.Recipient != "mix@example.test" {
			t.Fatalf("a message for %q was delivered", m.Recipient)
		}
	}
	if strings.Contains(pf.Log(), "victim@example.test") {
		t.Fatal("Postfix saw the smuggled recipient")
	}
}
