package smtp_test

import (
	"io"
	"net"
	"testing"
	"time"
)

// A command cut short by the end of the connection is not run: the server
// must not answer "NOOP" or act on "MAIL FROM:<a@b" that never got its LF.
func TestServer_partialLineNotRun(t *testing.T) {
	for _, partial := range []string{"NOOP", "MAIL FROM:<root@nsa.gov>", "QUIT\r"} {
		t.Run(partial, func(t *testing.T) {
			be, s, c, scanner, _ := testServerEhlo(t)
			defer s.Close()
			defer c.Close()
			io.WriteString(c, partial)
			c.(*net.TCPConn).CloseWrite()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if scanner.Scan() {
				t.Fatalf("reply to a command without LF: %q", scanner.Text())
			}
			if err := scanner.Err(); err != nil {
				t.Fatalf("expected EOF, got %v", err)
			}
			if len(be.anonmsgs)+len(be.messages) != 0 {
				t.Fatal("a message was started")
			}
		})
	}
}

// The same line with its CRLF (or a bare LF) is run.
func TestServer_wholeLineRun(t *testing.T) {
	for _, line := range []string{"NOOP\r\n", "NOOP\n"} {
		_, s, c, scanner, _ := testServerEhlo(t)
		io.WriteString(c, line)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if !scanner.Scan() || scanner.Text() != "250 2.0.0 I have successfully done nothing" {
			t.Errorf("%q: reply %q, err %v", line, scanner.Text(), scanner.Err())
		}
		c.Close()
		s.Close()
	}
}
