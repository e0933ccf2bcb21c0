package main

// End-to-end tests of a connection's last reply, with a raw Python client
// (testdata/last_reply.py) against the built binary and the test Postfix:
// after a 421 that ends a connection nothing the client pipelined behind the
// refused command is run, and SIGTERM ends idle sessions with 421 4.3.2
// while a message in flight is finished (or, past --shutdown-timeout, gets
// a 4xx and is not delivered), each reply written by go-smtp's own
// goroutine for the session.

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/internal/testkit"
	"github.com/postern/postern/proxy/proxytest"
)

func authPlainLine(login, password string) string {
	return "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+login+"\x00"+password)) + "\r\n"
}

// pipelineAfterAuth is what a client pipelines behind its AUTH attempts:
// the right password and a whole message.
var pipelineAfterAuth = authPlainLine(aliceLogin, alicePass) +
	"MAIL FROM:<" + aliceLogin + ">\r\nRCPT TO:<friend@example.test>\r\nDATA\r\n" +
	"Subject: pipelined after the last reply\r\n\r\nnever delivered\r\n.\r\nQUIT\r\n"

// pipelineRaw runs last_reply.py pipeline from sourceIP and returns what the
// server sent after the EHLO that follows STARTTLS, until it closed.
func pipelineRaw(t *testing.T, python, addr, sourceIP, payload string) string {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command(python, "testdata/last_reply.py", "pipeline", host, port, sourceIP)
	cmd.Stdin = strings.NewReader(payload)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("last_reply.py pipeline: %v\n%s", err, exitStderr(err))
	}
	var r struct{ Replies string }
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("last_reply.py output %q: %v", out, err)
	}
	return r.Replies
}

func exitStderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// stopAndWait sends SIGTERM and waits for postern to exit 0: everything its
// sessions did is done then.
func stopAndWait(t *testing.T, p *postern, timeout time.Duration) {
	t.Helper()
	if err := p.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := p.proc.Wait(ctx); err != nil {
		t.Fatalf("postern after SIGTERM: %v (want exit 0)\n%s", err, p.Log())
	}
}

// TestLastReplyPipelinedE2E: a 421 for too many AUTH failures on the
// connection, or for an address locked out, is the connection's last
// reply; the right password, MAIL, RCPT and DATA pipelined behind it are
// never run, so nothing is authenticated or delivered.
func TestLastReplyPipelinedE2E(t *testing.T) {
	t.Parallel()
	python := testkit.RequireTool(t, "python3")
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	p := startPostern(t, pf.Addr, "--max-auth-failures-per-connection", "2", "--auth-max-failures", "3")
	wrong := authPlainLine(aliceLogin, "wrong password")
	const (
		invalid  = "535 5.7.8 Authentication credentials invalid\r\n"
		tooMany  = "421 4.7.0 Too many authentication failures, closing connection\r\n"
		lockedUp = "421 4.7.0 Too many authentication failures from your address, try again later\r\n"
	)
	for _, tc := range []struct {
		name, source, payload, want string
	}{
		// The connection's second failure: closed (the address has 2 of 3).
		{"too many failures", "127.0.0.21", wrong + wrong + pipelineAfterAuth, invalid + tooMany},
		{"too many failures, same address", "127.0.0.22", wrong + wrong + pipelineAfterAuth, invalid + tooMany},
		// The address's third failure locks it out.
		{"failure that locks out", "127.0.0.22", wrong + pipelineAfterAuth, lockedUp},
		{"locked-out address", "127.0.0.22", pipelineAfterAuth, lockedUp},
	} {
		got := pipelineRaw(t, python, p.StartTLS, tc.source, tc.payload)
		if got != tc.want {
			t.Errorf("%s: got %q, want %q and the end of the connection", tc.name, got, tc.want)
		}
	}
	stopAndWait(t, p, 30*time.Second)
	if n := strings.Count(p.Log(), `msg="auth ok"`); n != 0 {
		t.Errorf("%d logins accepted after the last reply:\n%s", n, p.Log())
	}
	pf.WaitQueueEmpty(t, 10*time.Second)
	if msgs := pf.Messages(t); len(msgs) != 0 {
		t.Errorf("Postfix delivered %d messages pipelined after a 421", len(msgs))
	}
}

// TestShutdownIdleAndMidDataE2E: SIGTERM with one idle session and one half
// way through its DATA. The idle one gets 421 4.3.2 and the end of the
// connection at once. The other, finishing its message within
// --shutdown-timeout, gets Postfix's 250 (and the message is delivered),
// then 421 4.3.2; stalling past --shutdown-timeout, it gets 421 4.3.2 and
// nothing is delivered. Never a bare cut, never a 250 without delivery.
func TestShutdownIdleAndMidDataE2E(t *testing.T) {
	t.Parallel()
	python := testkit.RequireTool(t, "python3")
	const shuttingDown = "421 4.3.2 Service shutting down, try again later\r\n"
	for _, tc := range []struct {
		mode, drain string
	}{
		{"finish", "30s"},
		{"stall", "2s"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
			p := startPostern(t, pf.Addr, "--shutdown-timeout", tc.drain)
			host, port, _ := strings.Cut(p.StartTLS, ":")
			cmd := exec.Command(python, "testdata/last_reply.py", "shutdown", host, port, aliceLogin, alicePass, tc.mode)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			out := bufio.NewReader(stdout)
			if line, err := out.ReadString('\n'); line != "READY\n" {
				t.Fatalf("last_reply.py: %q %v\n%s", line, err, stderr.String())
			}
			if err := p.proc.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			p.waitLog(t, `msg="shutting down"`, 10*time.Second)
			if _, err := io.WriteString(stdin, "go\n"); err != nil {
				t.Fatal(err)
			}
			rest, err := io.ReadAll(out)
			if err != nil || cmd.Wait() != nil {
				t.Fatalf("last_reply.py: %v\n%s%s", err, rest, stderr.String())
			}
			var r struct{ Idle, Busy string }
			if err := json.Unmarshal(rest, &r); err != nil {
				t.Fatalf("last_reply.py output %q: %v", rest, err)
			}
			if r.Idle != shuttingDown {
				t.Errorf("idle session: got %q, want %q and the end of the connection", r.Idle, shuttingDown)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := p.proc.Wait(ctx); err != nil {
				t.Fatalf("postern after SIGTERM: %v (want exit 0)\n%s", err, p.Log())
			}
			pf.WaitQueueEmpty(t, 10*time.Second)
			msgs := pf.Messages(t)
			switch tc.mode {
			case "finish":
				accepted, after, _ := strings.Cut(r.Busy, "\r\n")
				if !strings.HasPrefix(accepted, "250 ") || !queuedByPostfix(accepted) || after != shuttingDown {
					t.Errorf("session finishing its message: got %q, want Postfix's 250, %q and the end of the connection", r.Busy, shuttingDown)
				}
				if len(msgs) != 1 {
					t.Fatalf("Postfix delivered %d messages, want 1", len(msgs))
				}
				findSubject(t, msgs, "shutdown finish")
			case "stall":
				if r.Busy != shuttingDown {
					t.Errorf("session stalled in DATA past --shutdown-timeout: got %q, want %q and the end of the connection", r.Busy, shuttingDown)
				}
				if len(msgs) != 0 {
					t.Errorf("Postfix delivered %d messages, want none", len(msgs))
				}
			}
		})
	}
}
