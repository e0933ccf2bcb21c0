package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// hangupPair is a clientConn over a real loopback TCP connection and the
// client's end of it.
func hangupPair(t *testing.T) (*clientConn, *net.TCPConn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	cc := newClientConn(server, client.LocalAddr().String(), "test", time.Minute, 0, nil)
	t.Cleanup(func() { cc.Close(); client.Close() })
	return cc, client.(*net.TCPConn)
}

// waitDone waits for ctx to end; the bound only keeps a broken watcher from
// hanging the test run.
func waitDone(t *testing.T, ctx context.Context) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(time.Minute):
		t.Fatal("the context did not end")
	}
}

// readN reads n bytes from cc (through its own Read and deadlines).
func readN(t *testing.T, cc *clientConn, n int) string {
	t.Helper()
	buf := make([]byte, n)
	if _, err := io.ReadFull(cc, buf); err != nil {
		t.Fatalf("reading after the watch: %v", err)
	}
	return string(buf)
}

// TestUntilHangup: the watch ends its context when the client closes
// (also behind data it sent and nobody read yet, as a TLS close_notify is)
// or resets the connection, never while it is connected, and never
// consumes a byte: what the client sent is read afterwards intact.
func TestUntilHangup(t *testing.T) {
	if !canSeeHangup {
		t.Skip("no TCP_INFO on " + runtime.GOOS)
	}
	t.Run("connected, data pending", func(t *testing.T) {
		cc, client := hangupPair(t)
		if _, err := client.Write([]byte("NOOP\r\n")); err != nil {
			t.Fatal(err)
		}
		ctx, stop := cc.untilHangup(context.Background())
		stop()
		if cause := context.Cause(ctx); !errors.Is(cause, context.Canceled) {
			t.Fatalf("cause %v, want context.Canceled (the client is connected)", cause)
		}
		if got := readN(t, cc, 6); got != "NOOP\r\n" {
			t.Fatalf("read %q after the watch", got)
		}
	})
	for _, tc := range []struct {
		name string
		data string
		end  func(*net.TCPConn) error
	}{
		{"FIN", "", (*net.TCPConn).Close},
		{"FIN behind unread data", "QUIT\r\n", (*net.TCPConn).Close},
		{"reset", "", func(c *net.TCPConn) error {
			if err := c.SetLinger(0); err != nil {
				return err
			}
			return c.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, client := hangupPair(t)
			ctx, stop := cc.untilHangup(context.Background())
			defer stop()
			if tc.data != "" {
				if _, err := client.Write([]byte(tc.data)); err != nil {
					t.Fatal(err)
				}
			}
			if err := tc.end(client); err != nil {
				t.Fatal(err)
			}
			waitDone(t, ctx)
			if cause := context.Cause(ctx); cause != errClientGone {
				t.Fatalf("cause %v, want errClientGone", cause)
			}
			stop()
			if tc.data != "" {
				if got := readN(t, cc, len(tc.data)); got != tc.data {
					t.Fatalf("read %q after the watch", got)
				}
			}
		})
	}
	t.Run("parent ends", func(t *testing.T) {
		cc, client := hangupPair(t)
		parent, cancel := context.WithCancelCause(context.Background())
		ctx, stop := cc.untilHangup(parent)
		cancel(errServerStopping)
		waitDone(t, ctx)
		stop() // returns: the watcher is woken although the client is quiet
		if cause := context.Cause(ctx); cause != errServerStopping {
			t.Fatalf("cause %v, want errServerStopping", cause)
		}
		// The connection still works, with its own deadlines.
		if _, err := client.Write([]byte("EHLO\r\n")); err != nil {
			t.Fatal(err)
		}
		if got := readN(t, cc, 6); got != "EHLO\r\n" {
			t.Fatalf("read %q after the watch", got)
		}
	})
}
