package proxytest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/testkit"
)

// send delivers one message over a fresh connection and returns the DATA
// reply text.
func send(t *testing.T, addr, from string, to []string, data []byte) string {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatalf("dialling %s: %v", addr, err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatalf("EHLO: %v", err)
	}
	if err := c.Mail(from, nil); err != nil {
		t.Fatalf("MAIL FROM:<%s>: %v", from, err)
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt, nil); err != nil {
			t.Fatalf("RCPT TO:<%s>: %v", rcpt, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatalf("writing the message: %v", err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		t.Fatalf("end of DATA: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatalf("QUIT: %v", err)
	}
	return resp.StatusText
}

func testMessage(n int) []byte {
	return []byte(fmt.Sprintf("Received: from [127.0.0.1] by postern.test (Postern) with ESMTPSA id X%d;\r\n"+
		"\tTue, 25 Nov 2025 07:00:00 +0000\r\n"+
		"From: sender@sender.test\r\n"+
		"To: alice@example.test, bob@example.test\r\n"+
		"Subject: test %d\r\n"+
		"\r\n"+
		"line one of message %d\r\n"+
		".a line that starts with a dot\r\n"+
		"..two dots\r\n"+
		"\r\n"+
		"last line\r\n", n, n, n))
}

func TestPostfixDelivers(t *testing.T) {
	began := time.Now()
	pf := StartPostfix(t, PostfixOptions{})
	t.Logf("StartPostfix took %v", time.Since(began))

	rcpts := []string{"alice@example.test", "Bob@example.test"}
	for i := 1; i <= 2; i++ {
		reply := send(t, pf.Addr, "sender@sender.test", rcpts, testMessage(i))
		if !strings.Contains(reply, "queued as ") {
			t.Errorf("DATA reply %q has no queue id", reply)
		}
	}

	msgs := pf.WaitMessages(t, 4, 10*time.Second)
	if len(msgs) != 4 {
		t.Fatalf("got %d messages, want 4", len(msgs))
	}
	for _, rcpt := range rcpts {
		got := MessagesTo(msgs, rcpt)
		if len(got) != 2 {
			t.Fatalf("%s got %d messages, want 2", rcpt, len(got))
		}
		seen := map[string]bool{}
		for _, m := range got {
			if m.ReturnPath != "sender@sender.test" {
				t.Errorf("Return-Path %q", m.ReturnPath)
			}
			if m.OriginalRecipient != rcpt {
				t.Errorf("X-Original-To %q, want %q", m.OriginalRecipient, rcpt)
			}
			if !strings.Contains(m.Received, "by upstream.test (Postfix)") {
				t.Errorf("Postfix Received header %q", m.Received)
			}
			for i := 1; i <= 2; i++ {
				if bytes.Equal(m.Data, testMessage(i)) {
					seen[fmt.Sprint(i)] = true
				}
			}
		}
		if len(seen) != 2 {
			t.Errorf("%s: messages not byte-exact; first one:\n%q", rcpt, got[0].Data)
		}
	}
	pf.WaitQueueEmpty(t, 5*time.Second)
	if log := pf.Log(); !strings.Contains(log, "status=sent (delivered to maildir)") {
		t.Errorf("maillog has no delivery:\n%s", log)
	}
}

func TestPostfixRefusesRecipients(t *testing.T) {
	pf := StartPostfix(t, PostfixOptions{
		RecipientAccess: []string{`/^full@example\.test$/ 452 4.2.2 mailbox full`},
	})
	c, err := smtp.Dial(pf.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("sender@sender.test", nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rcpt string
		code int
		text string
	}{
		{RejectedRecipient, 550, "no such user here"},
		{TempfailRecipient, 450, "try later"},
		{"full@example.test", 452, "mailbox full"},
	} {
		err := c.Rcpt(tc.rcpt, nil)
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != tc.code || !strings.Contains(se.Message, tc.text) {
			t.Errorf("RCPT TO:<%s>: %v, want %d ... %s", tc.rcpt, err, tc.code, tc.text)
		} else {
			t.Logf("RCPT TO:<%s>: %d %v %s", tc.rcpt, se.Code, se.EnhancedCode, se.Message)
		}
	}
}

func TestPostfixStopStart(t *testing.T) {
	pf := StartPostfix(t, PostfixOptions{})
	addr := pf.Addr

	pf.Stop()
	if pf.Running() {
		t.Fatal("Running after Stop")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s accepts connections after Stop", addr)
	}

	began := time.Now()
	pf.Start()
	t.Logf("restart took %v", time.Since(began))
	if pf.Addr != addr {
		t.Fatalf("address changed from %s to %s", addr, pf.Addr)
	}
	send(t, pf.Addr, "sender@sender.test", []string{"carol@example.test"}, testMessage(3))
	msgs := pf.WaitMessages(t, 1, 10*time.Second)
	if !bytes.Equal(msgs[0].Data, testMessage(3)) {
		t.Errorf("delivered after restart:\n%q", msgs[0].Data)
	}
}

// Several instances side by side, as parallel test packages would start
// them, must not share anything.
func TestPostfixParallel(t *testing.T) {
	for i := 0; i < 3; i++ {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			pf := StartPostfix(t, PostfixOptions{})
			rcpt := fmt.Sprintf("user%d@example.test", i)
			send(t, pf.Addr, "sender@sender.test", []string{rcpt}, testMessage(10+i))
			pf.WaitMessages(t, 1, 10*time.Second)
			time.Sleep(200 * time.Millisecond) // room for a stray extra delivery
			msgs := pf.Messages(t)
			if len(msgs) != 1 || msgs[0].Recipient != rcpt || !bytes.Equal(msgs[0].Data, testMessage(10+i)) {
				t.Errorf("instance %d delivered %d messages, first to %q", i, len(msgs), msgs[0].Recipient)
			}
		})
	}
}

// The generated layout and configuration pass Postfix's own checks, so the
// instance does not depend on Postfix tolerating a warning.
func TestPostfixCheckClean(t *testing.T) {
	pf := StartPostfix(t, PostfixOptions{XCLIENT: true, MessageSizeLimit: 1 << 20})
	postfix := testkit.RequireTool(t, "postfix")
	out, err := exec.Command(postfix, "-c", pf.ConfigDir(), "check").CombinedOutput()
	if err != nil {
		t.Fatalf("postfix check: %v\n%s\nmaillog:\n%s", err, out, pf.Log())
	}
	if log := pf.Log(); strings.Contains(log, "warning") || strings.Contains(log, "fatal") {
		t.Errorf("maillog has warnings:\n%s", log)
	}

	c, err := smtp.Dial(pf.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("XCLIENT"); !ok {
		t.Error("XCLIENT not offered")
	}
	if ok, _ := c.Extension("SMTPUTF8"); !ok {
		t.Error("SMTPUTF8 not offered")
	}
	if size, ok := c.MaxMessageSize(); !ok || size != 1<<20 {
		t.Errorf("SIZE %d, want %d", size, 1<<20)
	}
}
