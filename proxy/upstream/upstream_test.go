package upstream

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/proxy/proxytest"
)

// startData opens an upstream to a fake MTA, starts a transaction and runs
// Data in a goroutine with a body that writes the start of a message and
// then waits for more from the returned pipe, like a BDAT transfer waiting
// for its next chunk. The channel gets data's outcome.
func startData(t *testing.T, fake *proxytest.Upstream) (*Conn, *io.PipeWriter, <-chan error) {
	t.Helper()
	up, err := Dial(context.Background(), Config{Addr: fake.Addr, HeloName: "postern.test",
		DialTimeout: 5 * time.Second, Timeout: 5 * time.Second}, Identity{})
	if err != nil {
		t.Fatal(err)
	}
	if mailErr, rcptErr := up.MailRcpt("alice@example.test", nil, "bob@example.test", nil); mailErr != nil || rcptErr != nil {
		t.Fatal(mailErr, rcptErr)
	}
	pr, pw := io.Pipe()
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, _, bodyErr, err := up.Data(func(w io.Writer) (int64, error) {
			n, err := io.WriteString(w, "Subject: truncated\r\n\r\nfirst chunk\r\n")
			close(started)
			if err != nil {
				return int64(n), err
			}
			m, err := io.Copy(w, pr)
			return int64(n) + m, err
		})
		done <- errors.Join(bodyErr, err)
	}()
	<-started
	return up, pw, done
}

// TestUpstreamAbandonedDataNeverFinished: whatever another goroutine does
// to the upstream while data streams (the client's RSET or QUIT reaching the
// session while go-smtp's BDAT goroutine still runs Data), the message is
// never ended with a final dot, so the upstream queues nothing.
func TestUpstreamAbandonedDataNeverFinished(t *testing.T) {
	fake := proxytest.StartUpstream(t, proxytest.UpstreamOptions{})
	for _, tc := range []struct {
		name string
		act  func(up *Conn, pw *io.PipeWriter)
	}{
		// reset and quit wait for data, which fails when its body does.
		{"reset, then the body fails", func(up *Conn, pw *io.PipeWriter) {
			go func() { time.Sleep(100 * time.Millisecond); pw.CloseWithError(errors.New("client went away")) }()
			up.Reset()
		}},
		{"quit, then the body fails", func(up *Conn, pw *io.PipeWriter) {
			go func() { time.Sleep(100 * time.Millisecond); pw.CloseWithError(errors.New("client went away")) }()
			up.Quit()
		}},
		// abort cuts a data call still waiting for its body.
		{"abort during the body", func(up *Conn, pw *io.PipeWriter) {
			up.Abort()
			pw.Write([]byte("more\r\n"))
			pw.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up, pw, done := startData(t, fake)
			tc.act(up, pw)
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("data succeeded")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("data did not return")
			}
			if up.idle() {
				t.Fatal("an upstream whose message was abandoned is offered for reuse")
			}
			if err, _ := up.MailRcpt("alice@example.test", nil, "bob@example.test", nil); err == nil {
				t.Fatal("an aborted upstream still starts transactions")
			}
		})
	}
	// Once the fake has seen the connections end, check that it never got
	// a message.
	fake.WaitConnectionsClosed(t, 10*time.Second)
	for _, m := range fake.Messages() {
		if strings.Contains(string(m.Data), "truncated") {
			t.Fatalf("the upstream queued an abandoned message:\n%s", m.Data)
		}
	}

	t.Run("control: a complete message is delivered", func(t *testing.T) {
		up, pw, done := startData(t, fake)
		io.WriteString(pw, "the rest\r\n")
		pw.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if n := len(fake.WaitMessages(t, 1, 5*time.Second)); n != 1 {
			t.Fatalf("%d messages, want 1", n)
		}
		if !up.idle() {
			t.Fatal("upstream not reusable after a complete message")
		}
		up.Quit()
	})
}
