package smtp_test

// Helpers shared by the server's tests: a server on a loopback port whose
// session echoes what it was given, and a client that reads whole replies.

import (
	"bufio"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// echoBackend answers with what it was given, so that a reply carrying
// another connection's bytes (a pooled buffer shared while in use) shows.
type echoBackend struct{}

func (echoBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &echoSession{}, nil }

type echoSession struct{ from string }

func (s *echoSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *echoSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "user=" + username + " pass=" + password}
	}), nil
}
func (s *echoSession) Reset()        {}
func (s *echoSession) Logout() error { return nil }
func (s *echoSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *echoSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 0}, Message: "rcpt=" + to}
}
func (s *echoSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0},
		Message: fmt.Sprintf("from=%s len=%d crc=%08x", s.from, len(b), crc32.ChecksumIEEE(b))}
}

func echoServer(t testing.TB, be smtp.Backend, fn func(*smtp.Server)) (*smtp.Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := smtp.NewServer(be)
	s.Domain = "localhost"
	s.AllowInsecureAuth = true
	s.EnableBINARYMIME = true
	s.ErrorLog = nopLogger{}
	if fn != nil {
		fn(s)
	}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return s, l.Addr().String()
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...interface{}) {}
func (nopLogger) Println(...interface{})        {}

func dialGreeted(t testing.TB, addr string) (*net.TCPConn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	if l, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(l, "220 ") {
		t.Fatalf("greeting: %q, %v", l, err)
	}
	return c.(*net.TCPConn), br
}

// finalReplies reads n final reply lines, error instead of Fatal.
func finalReplies(br *bufio.Reader, n int) ([]string, error) {
	var got []string
	for len(got) < n {
		l, err := br.ReadString('\n')
		if err != nil {
			return got, fmt.Errorf("after %q: %v", got, err)
		}
		if len(l) > 3 && l[3] == ' ' {
			got = append(got, strings.TrimRight(l, "\r\n"))
		}
	}
	return got, nil
}
