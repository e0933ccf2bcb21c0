package smtp_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// bdatOrderSession records whether Reset or Logout ever ran while Data, which
// go-smtp runs in a goroutine of its own for BDAT, had not returned yet
// (see Conn.endBdat). Data is slow to return on purpose, like a backend
// that is still writing to an upstream when the reader fails.
type bdatOrderSession struct {
	mu       sync.Mutex
	inData   bool
	overlaps []string
	dataErr  error
	done     chan struct{} // closed by Logout
	conn     *smtp.Conn
	helo     string
}

func (s *bdatOrderSession) check(what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inData {
		s.overlaps = append(s.overlaps, what)
	}
}

func (s *bdatOrderSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *bdatOrderSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *bdatOrderSession) Reset()                               { s.check("Reset") }
func (s *bdatOrderSession) Logout() error {
	s.check("Logout")
	close(s.done)
	return nil
}

func (s *bdatOrderSession) Data(r io.Reader) error {
	s.mu.Lock()
	s.inData = true
	s.mu.Unlock()
	_, err := io.Copy(io.Discard, r)
	time.Sleep(200 * time.Millisecond)
	helo := s.conn.Hostname() // as a Received header writer does
	s.mu.Lock()
	s.inData, s.dataErr, s.helo = false, err, helo
	s.mu.Unlock()
	return err
}

func TestServerBdatAbandonedDataReturnsFirst(t *testing.T) {
	for _, tc := range []struct {
		name, abandon string
		hangUp        bool // close after writing abandon
	}{
		{"RSET", "RSET\r\nQUIT\r\n", false},
		{"EHLO", "EHLO again\r\nQUIT\r\n", false},
		{"QUIT", "QUIT\r\n", false},
		{"disconnect", "", true},
		{"over the size limit", "BDAT 100 LAST\r\n" + strings.Repeat("x", 98) + "\r\nQUIT\r\n", false},
		// The client announces 40 octets, sends 20 and hangs up: the
		// short LAST chunk must not end the message (patch 14).
		{"disconnect inside the LAST chunk", "BDAT 40 LAST\r\n" + strings.Repeat("z", 20), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sess := &bdatOrderSession{done: make(chan struct{})}
			be := smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { sess.conn = c; return sess, nil })
			s := smtp.NewServer(be)
			s.Domain = "localhost"
			s.MaxMessageBytes = 150
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go s.Serve(l)
			defer s.Close()
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, "EHLO localhost\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nBDAT 100\r\n"+
				strings.Repeat("y", 98)+"\r\n"+tc.abandon)
			if tc.hangUp {
				// Wait for the first chunk's 250 before hanging up.
				sc := bufio.NewScanner(c)
				for sc.Scan() && !strings.HasPrefix(sc.Text(), "250 2.0.0 Continue") {
				}
				c.Close()
			}
			select {
			case <-sess.done:
			case <-time.After(10 * time.Second):
				t.Fatal("no Logout")
			}
			sess.mu.Lock()
			defer sess.mu.Unlock()
			if len(sess.overlaps) > 0 {
				t.Fatalf("%v called while Data was still running", sess.overlaps)
			}
			if sess.helo != "localhost" {
				t.Fatalf("Data saw EHLO name %q, want the one of its transaction", sess.helo)
			}
			if !errors.Is(sess.dataErr, smtp.ErrDataReset) {
				t.Fatalf("Data's reader ended with %v, want ErrDataReset", sess.dataErr)
			}
		})
	}
}
