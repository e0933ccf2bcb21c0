package smtp

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestClientMailRcpt(t *testing.T) {
	for _, tc := range []struct {
		name       string
		pipelining bool
		server     string // replies, then a reply to the RSET sent afterwards
		writes     []string
		mailCode   int // 0: nil
		rcptCode   int // 0: nil; -1: nil and RCPT never sent
	}{
		{"pipelined, both accepted", true, "250 ok\r\n250 ok\r\n250 reset\r\n",
			[]string{"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n", "RSET\r\n"}, 0, 0},
		{"pipelined, MAIL refused", true, "550 5.7.1 not yours\r\n503 5.5.1 need MAIL\r\n250 reset\r\n",
			[]string{"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n", "RSET\r\n"}, 550, 503},
		{"pipelined, RCPT refused", true, "250 ok\r\n550 5.1.1 no such user\r\n250 reset\r\n",
			[]string{"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n", "RSET\r\n"}, 0, 550},
		{"no PIPELINING, both accepted", false, "250 ok\r\n250 ok\r\n250 reset\r\n",
			[]string{"MAIL FROM:<a@x.test>\r\n", "RCPT TO:<b@x.test>\r\n", "RSET\r\n"}, 0, 0},
		{"no PIPELINING, MAIL refused", false, "550 5.7.1 not yours\r\n250 reset\r\n",
			[]string{"MAIL FROM:<a@x.test>\r\n", "RSET\r\n"}, 550, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log writeLog
			c := NewClient(faker{ReadWriter: struct {
				io.Reader
				io.Writer
			}{strings.NewReader(tc.server), &log}})
			c.didHello = true
			c.ext = map[string]string{}
			if tc.pipelining {
				c.ext["PIPELINING"] = ""
			}
			mailErr, rcptErr := c.MailRcpt("a@x.test", nil, "b@x.test", nil)
			checkCode(t, "MAIL", mailErr, tc.mailCode)
			checkCode(t, "RCPT", rcptErr, tc.rcptCode)
			// The replies stay in step: the next command reads its own.
			if err := c.Reset(); err != nil {
				t.Fatalf("RSET after: %v", err)
			}
			if got := strings.Join(log.writes, "|"); got != strings.Join(tc.writes, "|") {
				t.Errorf("writes %q, want %q", log.writes, tc.writes)
			}
		})
	}
}

// TestClientMailRcptRecipients: an accepted pipelined RCPT is a recipient
// of the transaction, as after Rcpt (LMTP's Data reads them).
func TestClientMailRcptRecipients(t *testing.T) {
	var out bytes.Buffer
	c := NewClient(faker{ReadWriter: struct {
		io.Reader
		io.Writer
	}{strings.NewReader("250 ok\r\n250 ok\r\n"), &out}})
	c.didHello = true
	c.ext = map[string]string{"PIPELINING": ""}
	c.rcpts = []string{"old@x.test"}
	if m, r := c.MailRcpt("a@x.test", nil, "b@x.test", nil); m != nil || r != nil {
		t.Fatal(m, r)
	}
	if len(c.rcpts) != 1 || c.rcpts[0] != "b@x.test" {
		t.Errorf("recipients %q", c.rcpts)
	}
}

// TestClientMailRcptBrokenReply: a MAIL reply that is not a reply leaves
// the connection in an unknown state: both results carry the error.
func TestClientMailRcptBrokenReply(t *testing.T) {
	var out bytes.Buffer
	c := NewClient(faker{ReadWriter: struct {
		io.Reader
		io.Writer
	}{strings.NewReader("garbage\r\n250 ok\r\n"), &out}})
	c.didHello = true
	c.ext = map[string]string{"PIPELINING": ""}
	m, r := c.MailRcpt("a@x.test", nil, "b@x.test", nil)
	var se *SMTPError
	if m == nil || r != m || errors.As(m, &se) {
		t.Errorf("MailRcpt = %v, %v; want the same non-reply error twice", m, r)
	}
}

func checkCode(t *testing.T, what string, err error, code int) {
	t.Helper()
	if code <= 0 {
		if err != nil {
			t.Errorf("%s: %v, want nil", what, err)
		}
		return
	}
	var se *SMTPError
	if !errors.As(err, &se) || se.Code != code {
		t.Errorf("%s: %v, want a %d reply", what, err, code)
	}
}
