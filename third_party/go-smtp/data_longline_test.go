package smtp_test

import (
	"io"
	"strings"
	"testing"
)

// A message line longer than MaxLineLength is data, not an over-long
// command: it is delivered, and the session goes on (it used to get
// "500 5.5.6 Line too long" at the next command, and the connection closed).
func TestServerDataLongLine(t *testing.T) {
	be, s, c, scanner := testServerAuthenticated(t)
	defer s.Close()
	defer c.Close()

	long := strings.Repeat("x", 5*s.MaxLineLength)
	for i := 0; i < 2; i++ {
		io.WriteString(c, "MAIL FROM:<root@nsa.gov>\r\n")
		scanner.Scan()
		io.WriteString(c, "RCPT TO:<root@gchq.gov.uk>\r\n")
		scanner.Scan()
		io.WriteString(c, "DATA\r\n")
		scanner.Scan()
		if !strings.HasPrefix(scanner.Text(), "354 ") {
			t.Fatal("Invalid DATA response:", scanner.Text())
		}
		io.WriteString(c, long+"\r\n.\r\n")
		scanner.Scan()
		if !strings.HasPrefix(scanner.Text(), "250 ") {
			t.Fatalf("message %d: invalid response to a long line: %s", i, scanner.Text())
		}
	}
	if len(be.messages) != 2 || string(be.messages[1].Data) != long+"\r\n" {
		t.Fatalf("messages: got %d, want 2 with the long line", len(be.messages))
	}

	// The transaction is over, so MaxLineLength is enforced again.
	io.WriteString(c, "NOOP "+strings.Repeat("x", s.MaxLineLength)+"\r\n")
	scanner.Scan()
	if !strings.HasPrefix(scanner.Text(), "500 ") {
		t.Fatal("Invalid response to an over-long line:", scanner.Text())
	}
}
