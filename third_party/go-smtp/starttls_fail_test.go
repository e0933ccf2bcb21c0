package smtp_test

// A STARTTLS whose handshake fails ends the connection (as Postfix does):
// the commands a man-in-the-middle pipelined behind STARTTLS, still in the
// clear-text read buffer, must never run, and no clear-text reply follows.

import (
	"crypto/tls"
	"errors"
	"io"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// recordBackend records the MAIL commands its sessions ran and their Logouts.
type recordBackend struct {
	mu      sync.Mutex
	mails   []string
	logouts int
}

func (b *recordBackend) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &recordSession{b: b}, nil
}

func (b *recordBackend) counts() (mails []string, logouts int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.mails...), b.logouts
}

type recordSession struct {
	echoSession
	b *recordBackend
}

func (s *recordSession) Mail(from string, _ *smtp.MailOptions) error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.mails = append(s.b.mails, from)
	return nil
}

func (s *recordSession) Logout() error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.logouts++
	return nil
}

func TestServerStartTLSFailureEndsConnection(t *testing.T) {
	cert := selfSigned(t)
	for _, tc := range []struct {
		name string
		// after is what the client sends where its ClientHello belongs.
		after     string
		halfClose bool
	}{
		{"garbage", "GARBAGE, NOT A TLS RECORD\r\nRCPT TO:<z@y>\r\n", false},
		// A handshake record header announcing 512 bytes, 20 of them, EOF.
		{"truncated-hello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + strings.Repeat("r", 9), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := &recordBackend{}
			_, addr := echoServer(t, be, func(s *smtp.Server) {
				s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
				s.ReadTimeout = 30 * time.Second // the close must not wait for it
			})
			c, br := dialGreeted(t, addr)
			io.WriteString(c, "EHLO x\r\n")
			if _, err := finalReplies(br, 1); err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "STARTTLS\r\nMAIL FROM:<x@y>\r\n")
			got, err := finalReplies(br, 1)
			if err != nil || !strings.HasPrefix(got[0], "220 ") {
				t.Fatalf("STARTTLS: %q %v", got, err)
			}
			io.WriteString(c, tc.after)
			if tc.halfClose {
				c.CloseWrite()
			}
			// The server closes the connection within a bounded time;
			// it may send a TLS alert, but no SMTP reply.
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			rest, err := io.ReadAll(br)
			// A reset is a close too: the server may close with the
			// client's bytes unread.
			if err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("connection not closed by the server (%v); read %q", err, rest)
			}
			for _, bad := range []string{"250", "550", "MAIL", "503"} {
				if strings.Contains(string(rest), bad) {
					t.Errorf("clear-text reply after the failed handshake: %q", rest)
					break
				}
			}
			deadline := time.Now().Add(5 * time.Second)
			mails, logouts := be.counts()
			for logouts == 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
				mails, logouts = be.counts()
			}
			if len(mails) != 0 {
				t.Errorf("MAIL pipelined behind STARTTLS ran in clear text: %q", mails)
			}
			if logouts != 1 {
				t.Errorf("Logout called %d times, want 1", logouts)
			}
		})
	}
}
