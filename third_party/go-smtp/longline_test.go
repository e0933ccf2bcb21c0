package smtp_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

func skipLines(max int64, timeout time.Duration) func(*smtp.Server) {
	return func(s *smtp.Server) { s.MaxLineSkip, s.LineSkipTimeout = max, timeout }
}

// writeAsync writes s in the background, as a client that writes its
// whole line before it reads; the result is sent on the channel.
func writeAsync(c net.Conn, s string) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := io.WriteString(c, s)
		done <- err
	}()
	return done
}

func expectLines(t *testing.T, scanner *bufio.Scanner, want ...string) {
	t.Helper()
	for _, w := range want {
		if !scanner.Scan() {
			t.Fatalf("want %q, got %v", w, scanner.Err())
		}
		if got := scanner.Text(); !strings.HasPrefix(got, w) {
			t.Fatalf("got %q, want %q...", got, w)
		}
	}
}

// With MaxLineSkip, an over-long command line is read to its end and
// answered "500 5.5.6 Line too long", and the connection goes on: the
// client, still writing 1 MiB, gets no reset. Commands pipelined before
// and after it are answered, the AUTH exchange too.
func TestServerLongLineSkipped(t *testing.T) {
	long := strings.Repeat("QUFB", 1<<18) // 1 MiB
	for _, tc := range []struct {
		name  string
		input string
		want  []string
	}{
		{"NOOP", "NOOP " + long + "\r\nNOOP\r\n", []string{"500 5.5.6 Line too long", "250 "}},
		{"pipelined around it", "NOOP\r\nNOOP " + long + "\r\nNOOP\r\n", []string{"250 ", "500 5.5.6 Line too long", "250 "}},
		{"MAIL", "MAIL FROM:<" + long + ">\r\nMAIL FROM:<a@example.org>\r\n", []string{"500 5.5.6 Line too long", "250 "}},
		{"AUTH after 334", "AUTH PLAIN\r\n" + long + "\r\nNOOP\r\n", []string{"334 ", "500 5.5.6 Line too long", "250 "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, s, c, scanner, _ := testServerEhlo(t, skipLines(8<<20, 10*time.Second))
			defer s.Close()
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			written := writeAsync(c, tc.input)
			expectLines(t, scanner, tc.want...)
			if err := <-written; err != nil {
				t.Fatalf("write: %v", err)
			}
		})
	}
}

// Three lines too long are answered; the fourth protocol error ends the
// connection, as any other.
func TestServerLongLineErrorLimit(t *testing.T) {
	_, s, c, scanner, _ := testServerEhlo(t, skipLines(1<<20, 10*time.Second))
	defer s.Close()
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	line := "NOOP " + strings.Repeat("x", 5000) + "\r\n"
	written := writeAsync(c, strings.Repeat(line, 4))
	expectLines(t, scanner, "500 5.5.6", "500 5.5.6", "500 5.5.6", "500 5.5.6", "500 5.5.1 Too many errors")
	<-written
	if scanner.Scan() {
		t.Fatalf("after the last reply: %q", scanner.Text())
	}
}

// A line longer than MaxLineSkip is not read to its end: the reply is the
// last and the server stops reading, so a client that goes on writing
// fails, instead of being read from for ever.
func TestServerLongLineOverSkipBudget(t *testing.T) {
	_, s, c, _, _ := testServerEhlo(t, skipLines(64<<10, 10*time.Second))
	defer s.Close()
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	chunk := strings.Repeat("x", 64<<10)
	if _, err := io.WriteString(c, "NOOP "); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1024; i++ { // 64 MiB at most
		if _, err := io.WriteString(c, chunk); err != nil {
			return
		}
	}
	t.Fatal("the server read 64 MiB of one line")
}

// The skip is bounded in time too: a client that dribbles its line on ends
// with the reply and the end of the connection after LineSkipTimeout.
func TestServerLongLineSkipTimeout(t *testing.T) {
	_, s, c, scanner, _ := testServerEhlo(t, skipLines(8<<20, time.Second))
	defer s.Close()
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(c, "NOOP "+strings.Repeat("x", 3000))
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := io.WriteString(c, "x"); err != nil {
				return
			}
		}
	}()
	expectLines(t, scanner, "500 5.5.6 Line too long")
	if scanner.Scan() {
		t.Fatalf("after the last reply: %q", scanner.Text())
	}
	var ne net.Error
	if errors.As(scanner.Err(), &ne) && ne.Timeout() {
		t.Fatal("the connection was not ended within 30 s")
	}
}

// A message line longer than the command line limit is data (0031: DATA
// lines are bounded by the message size): the message is taken whole, the
// RCPT inside it is part of the message, never a command, and the session
// goes on after the final dot.
func TestServerLongLineInMessageIsData(t *testing.T) {
	be, s, c, scanner, _ := testServerEhlo(t, skipLines(8<<20, 10*time.Second))
	defer s.Close()
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(c, "MAIL FROM:<root@nsa.gov>\r\nRCPT TO:<root@gchq.gov.uk>\r\nDATA\r\n")
	expectLines(t, scanner, "250 ", "250 ", "354 ")
	body := "Subject: x\r\n\r\n" + strings.Repeat("x", 3000) + "\r\nRCPT TO:<evil@example.org>\r\nNOOP\r\n"
	io.WriteString(c, body+".\r\nNOOP\r\n")
	expectLines(t, scanner, "250 ", "250 ")
	if len(be.anonmsgs) != 1 || len(be.anonmsgs[0].To) != 1 || string(be.anonmsgs[0].Data) != body {
		t.Fatalf("delivered %d messages, want the one message to its one recipient, whole", len(be.anonmsgs))
	}
}

// A BDAT chunk read ahead with its command, a "line" too long, is handed
// out whole as the chunk's bytes (it was dropped with the command, which got
// 500 and a closed connection).
func TestServerBdatChunkReadAheadAsLongLine(t *testing.T) {
	be, s, c, scanner, _ := testServerEhlo(t, skipLines(8<<20, 10*time.Second))
	defer s.Close()
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(c, "MAIL FROM:<root@nsa.gov>\r\nRCPT TO:<root@gchq.gov.uk>\r\n")
	expectLines(t, scanner, "250 ", "250 ")
	// The idle wait reads 128 bytes: the NOOP and the start of BDAT's
	// line. The rest of the line comes with the chunk, in one read.
	chunk := strings.Repeat("y", 3000)
	io.WriteString(c, "NOOP "+strings.Repeat("n", 115)+"\r\nBDAT 3000 LAST\r\n"+chunk)
	expectLines(t, scanner, "250 ", "250 ")
	if len(be.anonmsgs) != 1 || string(be.anonmsgs[0].Data) != chunk {
		t.Fatalf("messages %d, want the chunk", len(be.anonmsgs))
	}
}
