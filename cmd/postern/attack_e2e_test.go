package main

// End-to-end tests of holes found by attacking the merged fixes of issue 9
// ("The gate holds") through the built binary.

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/proxy/proxytest"
)

// TestLoginTimeoutClientNotReadingE2E: a client that never logs in and never
// reads its replies (it pipelines NOOPs until Postern's writes block) must
// still be cut at --login-timeout. Before, the blocked reply write waited
// for the whole write timeout (--command-timeout, 5 min by default) and
// only the read after it looked at the login deadline: such clients held
// their connection slots for minutes instead of seconds.
func TestLoginTimeoutClientNotReadingE2E(t *testing.T) {
	t.Parallel()
	up := proxytest.StartUpstream(t, proxytest.UpstreamOptions{})
	p, metrics := startLimited(t, up.Addr, "--login-timeout", "2s", "--command-timeout", "2m")

	conn := limDial(t, p.StartTLS, "127.0.0.1", "")
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096) // fill Postern's send buffer sooner
	}
	// Write NOOPs and read nothing until the connection is closed (or
	// the writes block for good: then Postern is not reading either).
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		noops := []byte(strings.Repeat("NOOP\r\n", 1000))
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = conn.SetWriteDeadline(time.Now().Add(time.Minute))
			if _, err := conn.Write(noops); err != nil {
				return
			}
		}
	}()
	// Generous, yet far below the 2 min write timeout the cut waited for.
	p.waitLog(t, `msg="login timeout"`, 30*time.Second)
	limMetric(t, metrics, `postern_connections_refused_total{reason="login_timeout"}`, 1)
}

// TestDataTimeoutSlowlorisE2E: a logged-in client that dribbles its message
// (a byte every 200 ms) gets 451 4.4.2 once --data-timeout has passed, and
// the connection is closed. Before, Postern gave up on the message at the
// deadline, but go-smtp then drained the rest of the message with only the
// idle timeout, renewed by every byte: the client never heard the 451 and
// kept the connection for as long as it dribbled.
func TestDataTimeoutSlowlorisE2E(t *testing.T) {
	t.Parallel()
	up := proxytest.StartUpstream(t, proxytest.UpstreamOptions{})
	p := startPostern(t, up.Addr, "--data-timeout", "2s")
	c := dialTLSText(t, p.StartTLS, aliceLogin, alicePass)
	c.send("MAIL FROM:<" + aliceLogin + ">")
	c.expect("250")
	c.send("RCPT TO:<friend@example.test>")
	c.expect("250")
	c.send("DATA")
	c.expect("354")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if _, err := c.conn.Write([]byte("x")); err != nil {
				return
			}
		}
	}()
	_ = c.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	got, err := io.ReadAll(c.conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("no reply and no close within 15 s with --data-timeout 2s (got %q)", got)
	}
	if !strings.HasPrefix(string(got), "451 4.4.2 ") {
		t.Fatalf("got %q, want 451 4.4.2 and the close", got)
	}
	if len(up.Messages()) != 0 {
		t.Fatal("the upstream accepted the dribbled message")
	}
}
