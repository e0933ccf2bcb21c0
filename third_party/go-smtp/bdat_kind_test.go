package smtp_test

import (
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

// byBDATBackend records, inside each Session.Data, what Conn.DataByBDAT
// says about the message being read.
type byBDATBackend struct{ seen chan bool }

func (b byBDATBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &byBDATSession{conn: c, seen: b.seen}, nil
}

type byBDATSession struct {
	okEchoSession
	conn *smtp.Conn
	seen chan bool
}

func (s *byBDATSession) Data(r io.Reader) error {
	s.seen <- s.conn.DataByBDAT()
	_, err := io.Copy(io.Discard, r)
	return err
}

// TestServerDataByBDAT: Session.Data can tell a message sent with BDAT from
// one sent with DATA without looking at the reader's type, in either order
// on one connection.
func TestServerDataByBDAT(t *testing.T) {
	be := byBDATBackend{seen: make(chan bool, 4)}
	_, addr := echoServer(t, be, nil)
	c, br := dialGreeted(t, addr)
	transaction := "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n"
	for _, tc := range []struct {
		name, send string
		bdat       bool
	}{
		{"DATA", transaction + "DATA\r\n", false},
		{"BDAT", transaction + "BDAT 6\r\nline\r\nBDAT 0 LAST\r\n", true},
		{"DATA after BDAT", transaction + "DATA\r\n", false},
		{"BDAT LAST", transaction + "BDAT 6 LAST\r\nline\r\n", true},
	} {
		if _, err := io.WriteString(c, "EHLO x.test\r\n"+tc.send); err != nil {
			t.Fatal(err)
		}
		replies := 4 // EHLO, MAIL, RCPT and 354, or BDAT's first reply
		if tc.bdat {
			replies = 3 + strings.Count(tc.send, "BDAT ")
		}
		if _, err := finalReplies(br, replies); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !tc.bdat {
			if _, err := io.WriteString(c, "line\r\n.\r\n"); err != nil {
				t.Fatal(err)
			}
			if got, err := finalReplies(br, 1); err != nil || !strings.HasPrefix(got[0], "250 ") {
				t.Fatalf("%s: %q, %v", tc.name, got, err)
			}
		}
		if got := <-be.seen; got != tc.bdat {
			t.Errorf("%s: DataByBDAT() = %v in Data, want %v", tc.name, got, tc.bdat)
		}
	}
}
