package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stallingUpstream is a fake upstream MTA that answers normally until the
// step its mode names, and then neither reads nor answers any more.
type stallingUpstream struct {
	Addr string
	mode atomic.Value // string, read when a connection is accepted
	stop chan struct{}
	wg   sync.WaitGroup
}

// Modes of stallingUpstream.
const (
	stallNone     = ""          // a well-behaved MTA
	stallMail     = "mail"      // no reply to MAIL
	stallRcpt     = "rcpt"      // no reply to RCPT
	stallDataRead = "data-read" // 354, then stops reading the message
	stallAfterDot = "after-dot" // reads the whole message, never replies
	// stallAfterChunk offers CHUNKING, reads a whole BDAT LAST chunk
	// (Postern sends a small message so) and never replies.
	stallAfterChunk = "after-chunk"
	stallSlow       = "slow"    // reads the message in steps, at most 6 MiB/s
	stallDribble    = "dribble" // answers MAIL one byte every 400 ms
)

func startStallingUpstream(t *testing.T) *stallingUpstream {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &stallingUpstream{Addr: l.Addr().String(), stop: make(chan struct{})}
	u.mode.Store(stallNone)
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				defer conn.Close()
				u.serve(conn, u.mode.Load().(string))
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		close(u.stop)
		u.wg.Wait()
	})
	return u
}

func (u *stallingUpstream) serve(conn net.Conn, mode string) {
	br := bufio.NewReader(conn)
	say := func(s string) { conn.Write([]byte(s + "\r\n")) }
	stall := func() { <-u.stop }
	say("220 fake.test ESMTP")
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.TrimSpace(line))
		if i := strings.IndexAny(verb, " :"); i >= 0 {
			verb = verb[:i]
		}
		switch verb {
		case "EHLO":
			say("250-fake.test")
			if mode == stallAfterChunk {
				say("250-CHUNKING")
			}
			say("250 8BITMIME")
		case "MAIL", "RCPT":
			if mode == stallMail && verb == "MAIL" || mode == stallRcpt && verb == "RCPT" {
				stall()
				return
			}
			if mode == stallDribble && verb == "MAIL" {
				// Each byte within --upstream-timeout of the last,
				// the whole reply (32 bytes) well after it.
				for _, b := range []byte("250 2.1.0 Ok " + strings.Repeat(".", 17) + "\r\n") {
					select {
					case <-u.stop:
						return
					case <-time.After(400 * time.Millisecond):
					}
					if _, err := conn.Write([]byte{b}); err != nil {
						return
					}
				}
				continue
			}
			say("250 2.1.0 Ok")
		case "DATA":
			say("354 End data with <CR><LF>.<CR><LF>")
			if mode == stallDataRead {
				stall()
				return
			}
			if mode == stallSlow {
				// A small receive window, so little of the message
				// waits in buffers when Postern sends the final dot:
				// its reply must come within --upstream-timeout.
				conn.(*net.TCPConn).SetReadBuffer(64 << 10)
			}
			if !readMessage(br, mode == stallSlow) {
				return
			}
			if mode == stallAfterDot {
				stall()
				return
			}
			say("250 2.0.0 Ok: queued as FAKE1")
		case "BDAT":
			var size int
			if _, err := fmt.Sscanf(strings.TrimSpace(line)[len("BDAT "):], "%d", &size); err != nil {
				say("501 5.5.4 Bad BDAT")
				continue
			}
			if _, err := io.CopyN(io.Discard, br, int64(size)); err != nil {
				return
			}
			if mode == stallAfterChunk {
				stall()
				return
			}
			say("250 2.0.0 Ok: queued as FAKE1")
		case "QUIT":
			say("221 2.0.0 Bye")
			return
		default:
			say("250 2.0.0 Ok")
		}
	}
}

// TestUpstreamStallBounded: an upstream that stops reading or answering at
// any step gives the client a 4xx within a bound set by --upstream-timeout,
// and the server keeps serving; a slow upstream that keeps making progress
// is not cut.
func TestUpstreamStallBounded(t *testing.T) {
	t.Parallel()
	up := startStallingUpstream(t)
	p := startPostern(t, up.Addr, "--upstream-timeout", "2s", "--upstream-pool", "0")

	// send runs MAIL, RCPT and, if body is not nil, DATA with body while
	// reading the reply that ends the transaction; it returns that reply
	// and how long it took from the first command.
	send := func(t *testing.T, body []byte) (string, time.Duration) {
		c := dialTLSText(t, p.StartTLS, aliceLogin, alicePass)
		start := time.Now()
		c.send("MAIL FROM:<" + aliceLogin + ">")
		if reply := c.expect(""); !strings.HasPrefix(reply, "250") || body == nil {
			if strings.HasPrefix(reply, "250") {
				c.send("RCPT TO:<friend@example.test>")
				reply = c.expect("")
			}
			return reply, time.Since(start)
		}
		c.send("RCPT TO:<friend@example.test>")
		c.expect("250")
		c.send("DATA")
		c.expect("354")
		// The client keeps sending while Postern is stuck; write from
		// a goroutine so the reply can come whenever it comes.
		written := make(chan error, 1)
		go func() {
			c.conn.SetWriteDeadline(time.Now().Add(60 * time.Second))
			_, err := c.conn.Write(append(body, ".\r\n"...))
			written <- err
		}()
		reply := c.expect("")
		if err := <-written; err != nil {
			t.Fatalf("sending the message: %v", err)
		}
		return reply, time.Since(start)
	}
	small := []byte("Subject: stall\r\n\r\nhello\r\n")

	t.Run("no reply to MAIL", func(t *testing.T) {
		up.mode.Store(stallMail)
		reply, took := send(t, nil)
		if !strings.HasPrefix(reply, "451 4.4.") {
			t.Fatalf("got %q after %v, want 451 4.4.x", reply, took)
		}
	})
	t.Run("no reply to RCPT", func(t *testing.T) {
		up.mode.Store(stallRcpt)
		reply, took := send(t, nil)
		if !strings.HasPrefix(reply, "451 4.4.2") {
			t.Fatalf("got %q after %v, want 451 4.4.2", reply, took)
		}
	})
	t.Run("reply to MAIL dribbled a byte at a time", func(t *testing.T) {
		// Every read makes progress, but the reply as a whole takes
		// 13 s: --upstream-timeout bounds a reply, not a byte.
		up.mode.Store(stallDribble)
		reply, took := send(t, nil)
		if !strings.HasPrefix(reply, "451 4.4.") {
			t.Fatalf("got %q after %v, want 451 4.4.x", reply, took)
		}
	})
	t.Run("stops reading a 30 MB message", func(t *testing.T) {
		up.mode.Store(stallDataRead)
		reply, took := send(t, bigBody(30<<20))
		if !strings.HasPrefix(reply, "451 4.4.2") {
			t.Fatalf("got %q after %v, want 451 4.4.2", reply, took)
		}
		t.Logf("451 after %v", took)
	})
	t.Run("no reply after the final dot", func(t *testing.T) {
		up.mode.Store(stallAfterDot)
		reply, took := send(t, small)
		if !strings.HasPrefix(reply, "451 4.4.2") {
			t.Fatalf("got %q after %v, want 451 4.4.2", reply, took)
		}
		// Five times --upstream-timeout: the reply after the dot has no
		// longer timeout of its own.
		if took > 10*time.Second {
			t.Fatalf("451 only after %v with --upstream-timeout 2s", took)
		}
	})
	t.Run("no reply to BDAT LAST", func(t *testing.T) {
		// An upstream offering CHUNKING gets a small message as one
		// BDAT LAST chunk, read through Postern's own reply reader:
		// --upstream-timeout bounds that reply as it does the dot's.
		up.mode.Store(stallAfterChunk)
		reply, took := send(t, small)
		if !strings.HasPrefix(reply, "451 4.4.") {
			t.Fatalf("got %q after %v, want 451 4.4.x", reply, took)
		}
	})
	t.Run("slow but steady upstream is not cut", func(t *testing.T) {
		up.mode.Store(stallSlow)
		reply, took := send(t, bigBody(30<<20))
		if !strings.HasPrefix(reply, "250 2.0.0 Ok: queued as FAKE1") {
			t.Fatalf("got %q after %v, want the upstream's 250", reply, took)
		}
		t.Logf("30 MiB at up to 6 MiB/s took %v (--upstream-timeout 2s)", took)
	})
	t.Run("the server still serves", func(t *testing.T) {
		up.mode.Store(stallNone)
		if reply, _ := send(t, small); !strings.HasPrefix(reply, "250 2.0.0 Ok: queued as FAKE1") {
			t.Fatalf("got %q", reply)
		}
	})
	if strings.Contains(p.Log(), "panic") || strings.Contains(p.Log(), "DATA RACE") {
		t.Fatalf("postern:\n%s", p.Log())
	}
}

// readMessage reads up to the end-of-data line, in 64 KiB steps 10 ms apart
// (at most 6 MiB/s) if slow.
func readMessage(br *bufio.Reader, slow bool) bool {
	buf := make([]byte, 64<<10)
	var tail []byte
	for {
		if slow {
			time.Sleep(10 * time.Millisecond)
		}
		n, err := br.Read(buf)
		if err != nil {
			return false
		}
		tail = append(tail, buf[:n]...)
		if bytes.HasSuffix(tail, []byte("\r\n.\r\n")) {
			return true
		}
		if len(tail) > 4 {
			tail = tail[len(tail)-4:]
		}
	}
}
