package smtp_test

// Tests of Conn.CloseAfterReply: the reply to the command is the last thing
// the server says, and no command the client pipelined behind it is run.

import (
	"bytes"
	"context"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

var errClosing = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Go away"}

// closingBackend's sessions record every call; MAIL FROM:<closer@example.org>
// and a failed AUTH end the connection with errClosing.
type closingBackend struct {
	mu    sync.Mutex
	calls []string
}

func (b *closingBackend) record(call string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, call)
}

func (b *closingBackend) recorded() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.calls, " ")
}

func (b *closingBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &closingSession{b: b, c: c}, nil
}

type closingSession struct {
	b *closingBackend
	c *smtp.Conn
}

func (s *closingSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *closingSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, username, password string) error {
		s.b.record("Auth(" + username + ")")
		if password != "password" {
			s.c.CloseAfterReply()
			return errClosing
		}
		return nil
	}), nil
}

func (s *closingSession) Mail(from string, _ *smtp.MailOptions) error {
	s.b.record("Mail(" + from + ")")
	if from == "closer@example.org" {
		s.c.CloseAfterReply()
		return errClosing
	}
	return nil
}

func (s *closingSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.b.record("Rcpt(" + to + ")")
	return nil
}

func (s *closingSession) Data(r io.Reader) error {
	s.b.record("Data")
	_, err := io.Copy(io.Discard, r)
	return err
}

func (s *closingSession) Reset()        {}
func (s *closingSession) Logout() error { s.b.record("Logout"); return nil }

func TestServer_closeAfterReply(t *testing.T) {
	// "username" / "wrong" and "username" / "password"
	const wrong, right = "AHVzZXJuYW1lAHdyb25n", "AHVzZXJuYW1lAHBhc3N3b3Jk"
	for _, tt := range []struct {
		name      string
		pipelined string // sent in one write after the greeting
		want      string // the replies after EHLO's
		calls     string
	}{
		{"MAIL",
			"MAIL FROM:<closer@example.org>\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nhi\r\n.\r\n",
			"421 4.7.0 Go away\r\n", "Mail(closer@example.org) Logout"},
		{"AUTH",
			"AUTH PLAIN " + wrong + "\r\nAUTH PLAIN " + right + "\r\nMAIL FROM:<a@example.org>\r\n",
			"421 4.7.0 Go away\r\n", "Auth(username) Logout"},
		{"AUTH after 334",
			"AUTH PLAIN\r\n" + wrong + "\r\nAUTH PLAIN " + right + "\r\n",
			"334 \r\n421 4.7.0 Go away\r\n", "Auth(username) Logout"},
		// Not CloseAfterReply, the same rule: nothing is run after QUIT.
		{"QUIT",
			"QUIT\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n",
			"221 2.0.0 Bye\r\n", "Logout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			be := &closingBackend{}
			s := smtp.NewServer(be)
			s.Domain = "localhost"
			s.AllowInsecureAuth = true
			var errLog bytes.Buffer
			var errLogMu sync.Mutex
			s.ErrorLog = log.New(lockedWriter{&errLogMu, &errLog}, "", 0)
			go s.Serve(l)

			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, "EHLO localhost\r\n"+tt.pipelined); err != nil {
				t.Fatal(err)
			}
			got := readAll(t, c) // until the server closes
			_, after, ok := strings.Cut(got, "250 SIZE\r\n")
			if !ok || after != tt.want {
				t.Errorf("got %q, want the EHLO reply, %q and the end of the connection", got, tt.want)
			}
			// Shutdown waits until the connection's goroutine is done.
			c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			if calls := be.recorded(); calls != tt.calls {
				t.Errorf("session calls %q, want %q", calls, tt.calls)
			}
			errLogMu.Lock()
			defer errLogMu.Unlock()
			if errLog.Len() > 0 {
				t.Errorf("server error log: %s", errLog.String())
			}
		})
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}
