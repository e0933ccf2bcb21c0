package proxytest

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// dialUpstream opens a client session (EHLO done).
func dialUpstream(t *testing.T, u *Upstream) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(u.Addr)
	if err != nil {
		t.Fatalf("dialling the fake upstream: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil {
		t.Fatalf("EHLO: %v", err)
	}
	return c
}

// transact runs MAIL, RCPT... and DATA and returns the DATA reply or
// error; RCPT errors are ignored so refused recipients can be tested.
func transact(t *testing.T, c *smtp.Client, from string, to []string, data []byte) (string, error) {
	t.Helper()
	if err := c.Mail(from, nil); err != nil {
		return "", err
	}
	for _, rcpt := range to {
		_ = c.Rcpt(rcpt, nil)
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := w.Write(data); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	return resp.StatusText, nil
}

// eventually polls cond for up to 5 s: connection counts change when the
// server goroutine gets to it, not when the client call returns.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func smtpCode(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func TestUpstreamRecords(t *testing.T) {
	u := StartUpstream(t, UpstreamOptions{})
	c := dialUpstream(t, u)
	if ok, _ := c.Extension("SMTPUTF8"); !ok {
		t.Error("SMTPUTF8 not offered")
	}
	if ok, _ := c.Extension("DSN"); !ok {
		t.Error("DSN not offered")
	}

	body := []byte("Subject: one\r\n\r\n.leading dot\r\nbody\r\n")
	if err := c.Mail("a@sender.test", &smtp.MailOptions{Body: smtp.Body8BitMIME, Size: int64(len(body)), EnvelopeID: "env1"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("x@example.test", &smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifyFailure}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("y@example.test", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write(body)
	resp, err := w.CloseWithResponse()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(resp.StatusText, "Ok: queued as FAKE1") {
		t.Errorf("DATA reply %q", resp.StatusText)
	}

	// A second transaction on the same connection.
	reply, err := transact(t, c, "", []string{"z@example.test"}, []byte("Subject: two\r\n\r\nx\r\n"))
	if err != nil || !strings.HasSuffix(reply, "Ok: queued as FAKE2") {
		t.Fatalf("second message: %q, %v", reply, err)
	}

	msgs := u.WaitMessages(t, 2, 5*time.Second)
	m := msgs[0]
	if m.From != "a@sender.test" || strings.Join(m.Rcpts, ",") != "x@example.test,y@example.test" ||
		!bytes.Equal(m.Data, body) || m.QueueID != "FAKE1" || m.Conn != 1 {
		t.Errorf("first message recorded as %+v", m)
	}
	if m.MailOptions.Body != smtp.Body8BitMIME || m.MailOptions.Size != int64(len(body)) || m.MailOptions.EnvelopeID != "env1" {
		t.Errorf("MAIL options recorded as %+v", m.MailOptions)
	}
	if len(m.RcptOptions) != 2 || len(m.RcptOptions[0].Notify) != 1 || m.RcptOptions[0].Notify[0] != smtp.DSNNotifyFailure {
		t.Errorf("RCPT options recorded as %+v", m.RcptOptions)
	}
	if msgs[1].From != "" || msgs[1].Conn != 1 {
		t.Errorf("second message recorded as %+v", msgs[1])
	}
	if u.Connections() != 1 || u.Sessions() != 1 {
		t.Errorf("connections %d sessions %d, want 1 and 1", u.Connections(), u.Sessions())
	}
}

func TestUpstreamTenMegabytes(t *testing.T) {
	u := StartUpstream(t, UpstreamOptions{})
	line := strings.Repeat("0123456789abcdef", 6) + "\r\n" // 98 bytes
	body := []byte("Subject: big\r\n\r\n" + strings.Repeat(line, 10<<20/len(line)+1))
	if _, err := transact(t, dialUpstream(t, u), "a@sender.test", []string{"b@example.test"}, body); err != nil {
		t.Fatal(err)
	}
	if got := u.Messages()[0].Data; !bytes.Equal(got, body) {
		t.Errorf("10 MB message recorded with %d bytes, sent %d", len(got), len(body))
	}
}

func TestUpstreamSizeLimit(t *testing.T) {
	u := StartUpstream(t, UpstreamOptions{MaxMessageBytes: 1000})
	c := dialUpstream(t, u)
	if size, ok := c.MaxMessageSize(); !ok || size != 1000 {
		t.Errorf("SIZE %d, want 1000", size)
	}
	_, err := transact(t, c, "a@sender.test", []string{"b@example.test"}, bytes.Repeat([]byte("x\r\n"), 1000))
	if smtpCode(err) != 552 {
		t.Errorf("over-size message: %v, want 552", err)
	}
	if n := len(u.Messages()); n != 0 {
		t.Errorf("%d messages recorded", n)
	}
}

func TestUpstreamNoExtensions(t *testing.T) {
	u := StartUpstream(t, UpstreamOptions{NoSMTPUTF8: true, NoDSN: true})
	c := dialUpstream(t, u)
	for _, ext := range []string{"SMTPUTF8", "DSN"} {
		if ok, _ := c.Extension(ext); ok {
			t.Errorf("%s offered", ext)
		}
	}
}

func TestUpstreamMailError(t *testing.T) {
	u := StartUpstream(t, UpstreamOptions{MailError: &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "shutting down"}})
	err := dialUpstream(t, u).Mail("a@sender.test", nil)
	if smtpCode(err) != 421 || !strings.Contains(err.Error(), "shutting down") {
		t.Errorf("MAIL: %v", err)
	}
}

func TestUpstreamRejectRcpt(t *testing.T) {
	u := StartUpstream(t, UpstreamOptions{RejectRcpt: map[string]*smtp.SMTPError{
		"nobody@example.test": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"},
	}})
	c := dialUpstream(t, u)
	if err := c.Mail("a@sender.test", nil); err != nil {
		t.Fatal(err)
	}
	err := c.Rcpt("Nobody@Example.test", nil)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 1, 1}) || se.Message != "no such user" {
		t.Errorf("refused RCPT: %v", err)
	}
	if err := c.Rcpt("ok@example.test", nil); err != nil {
		t.Fatal(err)
	}
	w, _ := c.Data()
	w.Write([]byte("Subject: x\r\n\r\ny\r\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if m := u.WaitMessages(t, 1, 5*time.Second)[0]; len(m.Rcpts) != 1 || m.Rcpts[0] != "ok@example.test" {
		t.Errorf("recipients recorded %v", m.Rcpts)
	}
}

func TestUpstreamDataError(t *testing.T) {
	u := StartUpstream(t, UpstreamOptions{DataError: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "queue file write error"}})
	c := dialUpstream(t, u)
	_, err := transact(t, c, "a@sender.test", []string{"b@example.test"}, []byte("Subject: x\r\n\r\ny\r\n"))
	if smtpCode(err) != 451 || !strings.Contains(err.Error(), "queue file write error") {
		t.Errorf("DATA: %v", err)
	}
	if n := len(u.Messages()); n != 0 {
		t.Errorf("%d messages recorded after a DATA error", n)
	}

	// Knobs change at run time, for "fails, then works" tests; the
	// session survives the error.
	u.SetOptions(UpstreamOptions{})
	if reply, err := transact(t, c, "a@sender.test", []string{"b@example.test"}, []byte("Subject: x\r\n\r\ny\r\n")); err != nil || !strings.Contains(reply, "FAKE1") {
		t.Errorf("after SetOptions: %q, %v", reply, err)
	}
}

func TestUpstreamDropMidData(t *testing.T) {
	u := StartUpstream(t, UpstreamOptions{DropAfterBytes: 4096})
	c := dialUpstream(t, u)
	_, err := transact(t, c, "a@sender.test", []string{"b@example.test"}, bytes.Repeat([]byte("0123456789abcdef\r\n"), 10000))
	if err == nil {
		t.Fatal("DATA succeeded although the upstream dropped the connection")
	}
	if code := smtpCode(err); code != 0 {
		t.Errorf("got an SMTP reply %d (%v); want a broken connection", code, err)
	}
	t.Logf("client saw: %v", err)
	if n := len(u.Messages()); n != 0 {
		t.Errorf("%d messages recorded after a drop", n)
	}
	eventually(t, "the dropped session to end", func() bool { return u.ActiveSessions() == 0 && u.ActiveConnections() == 0 })

	// A message shorter than the drop point goes through.
	c2 := dialUpstream(t, u)
	if _, err := transact(t, c2, "a@sender.test", []string{"b@example.test"}, []byte("Subject: short\r\n\r\nx\r\n")); err != nil {
		t.Errorf("short message: %v", err)
	}
}

func TestUpstreamDataDelay(t *testing.T) {
	const delay = 300 * time.Millisecond
	u := StartUpstream(t, UpstreamOptions{DataDelay: delay})
	c := dialUpstream(t, u)
	began := time.Now()
	if _, err := transact(t, c, "a@sender.test", []string{"b@example.test"}, []byte("Subject: x\r\n\r\ny\r\n")); err != nil {
		t.Fatal(err)
	}
	// A lower bound only: the reply cannot come before the delay.
	if took := time.Since(began); took < delay {
		t.Errorf("DATA answered after %v, before the %v delay", took, delay)
	}
}

func TestUpstreamCounts(t *testing.T) {
	u := StartUpstream(t, UpstreamOptions{})

	// A connection that never greets is a connection, not a session.
	raw, err := net.Dial("tcp", u.Addr)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the raw connection", func() bool { return u.Connections() == 1 && u.ActiveConnections() == 1 })
	if u.Sessions() != 0 {
		t.Errorf("%d sessions before EHLO", u.Sessions())
	}

	c1 := dialUpstream(t, u)
	c2 := dialUpstream(t, u)
	eventually(t, "two sessions", func() bool { return u.Sessions() == 2 && u.ActiveSessions() == 2 })
	if u.Connections() != 3 || u.ActiveConnections() != 3 {
		t.Errorf("connections %d active %d, want 3 and 3", u.Connections(), u.ActiveConnections())
	}

	if err := c1.Quit(); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	eventually(t, "one session left", func() bool { return u.ActiveSessions() == 1 && u.ActiveConnections() == 1 })
	c2.Close() // without QUIT
	eventually(t, "no sessions left", func() bool { return u.ActiveSessions() == 0 && u.ActiveConnections() == 0 })
	if u.Sessions() != 2 || u.Connections() != 3 {
		t.Errorf("totals changed: sessions %d connections %d", u.Sessions(), u.Connections())
	}
}

func TestUpstreamClose(t *testing.T) {
	u := StartUpstream(t, UpstreamOptions{})
	c := dialUpstream(t, u)
	u.Close()
	u.Close()
	if err := c.Noop(); err == nil {
		t.Error("session still usable after Close")
	}
	if conn, err := net.DialTimeout("tcp", u.Addr, time.Second); err == nil {
		conn.Close()
		t.Error("still accepting after Close")
	}
}
