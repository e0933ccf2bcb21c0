package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/testkit"
	"github.com/postern/postern/proxy/proxytest"
)

// Several --upstream (issue 21, part 2): a transaction goes to the first
// healthy upstream and fails over to the next before any byte of the
// message is sent; once DATA started there is no second try.

// brokenUpstream is an MTA that fails in one way before the message:
// "greet421" closes with 421 at the greeting, "mail451" answers MAIL with
// 451, "silent" accepts the connection and never says a word.
func brokenUpstream(t *testing.T, mode string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				serveBroken(conn, mode, stop)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		close(stop)
		wg.Wait()
	})
	return l.Addr().String()
}

func serveBroken(conn net.Conn, mode string, stop chan struct{}) {
	say := func(s string) { conn.Write([]byte(s + "\r\n")) }
	switch mode {
	case "silent":
		<-stop
		return
	case "greet421":
		say("421 4.3.2 broken.test Service shutting down")
		return
	}
	say("220 broken.test ESMTP")
	br := bufio.NewReader(conn)
	for {
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		switch verb := strings.ToUpper(strings.Fields(line + " x")[0]); {
		case verb == "EHLO":
			say("250-broken.test")
			say("250 PIPELINING")
		case strings.HasPrefix(verb, "MAIL"):
			say("451 4.3.0 broken.test try again later")
		case strings.HasPrefix(verb, "RCPT"):
			say("503 5.5.1 need MAIL first")
		case verb == "QUIT":
			say("221 bye")
			return
		default:
			say("250 ok")
		}
	}
}

// submitMarked sends one message as alice on c whose Subject is marker;
// it returns the stage that failed ("mail", "rcpt", "data") and the error.
func submitMarked(c *smtp.Client, marker string) (string, error) {
	if err := c.Mail(aliceLogin, nil); err != nil {
		return "mail", err
	}
	if err := c.Rcpt("friend@"+proxytest.PostfixDomain, nil); err != nil {
		return "rcpt", err
	}
	w, err := c.Data()
	if err != nil {
		return "data", err
	}
	fmt.Fprintf(w, "From: %s\r\nTo: friend@%s\r\nSubject: %s\r\nMessage-ID: <%s@upstreams.test>\r\n\r\nbody of %s\r\n",
		aliceLogin, proxytest.PostfixDomain, marker, marker, marker)
	if err := w.Close(); err != nil {
		return "data", err
	}
	return "", nil
}

// markersIn counts the Subject markers of the messages delivered to pf.
func markersIn(t *testing.T, pf *proxytest.Postfix, into map[string]int) {
	t.Helper()
	for _, m := range pf.Messages(t) {
		for _, line := range strings.Split(string(m.Data), "\r\n") {
			if s, ok := strings.CutPrefix(line, "Subject: "); ok {
				into[s]++
				break
			}
		}
	}
}

// waitLines waits until postern logged n lines containing every one of
// parts (its log reaches the test through a pipe, after the reply the
// client read) and returns all such lines then; none if it never did.
func waitLines(t *testing.T, p *postern, n int, parts ...string) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		lines := linesWith(p, parts...)
		if len(lines) >= n || time.Now().After(deadline) {
			return lines
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// linesWith are postern's log lines containing every one of parts.
func linesWith(p *postern, parts ...string) []string {
	var out []string
	for _, l := range strings.Split(p.Log(), "\n") {
		all := true
		for _, part := range parts {
			all = all && strings.Contains(l, part)
		}
		if all {
			out = append(out, l)
		}
	}
	return out
}

// TestUpstreamFailoverFirstDownE2E (a): the first --upstream's port is
// closed: every message goes to the second (a real Postfix) and the client
// sees only 250. The dead upstream is tried once and then skipped for
// --upstream-hold-down; the log names the upstream of each message and the
// metrics count per upstream.
func TestUpstreamFailoverFirstDownE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	dead := testkit.FreeAddr(t)
	metrics := testkit.FreeAddr(t)
	p := startPostern(t, dead, "--upstream", pf.Addr, "--upstream-hold-down", "10m", "--metrics", metrics)
	p.waitLog(t, `msg="metrics listening"`, 10*time.Second)

	const n = 3
	for i := range n {
		c := dialAuth(t, p.StartTLS, aliceLogin, alicePass)
		if stage, err := submitMarked(c, fmt.Sprintf("first-down-%d", i)); err != nil {
			t.Fatalf("message %d: %s: %v, want 250 (the second upstream takes it)", i, stage, err)
		}
		c.Quit()
	}
	seen := map[string]int{}
	pf.WaitMessages(t, n, 30*time.Second)
	markersIn(t, pf, seen)
	for i := range n {
		if got := seen[fmt.Sprintf("first-down-%d", i)]; got != 1 {
			t.Errorf("first-down-%d delivered %d times by the second upstream, want 1", i, got)
		}
	}
	if got := len(waitLines(t, p, 1, `msg="upstream unavailable"`, "upstream="+dead)); got != 1 {
		t.Errorf("the dead upstream was tried %d times, want once (then skipped for the hold-down):\n%s", got, p.Log())
	}
	if got := len(waitLines(t, p, n, `msg="message accepted"`, "upstream="+pf.Addr)); got != n {
		t.Errorf("%d message lines name upstream=%s, want %d:\n%s", got, pf.Addr, n, p.Log())
	}
	m, _ := opsScrape(t, "http://"+metrics+"/metrics")
	for key, want := range map[string]float64{
		`postern_upstream_failures_total{stage="connect",upstream="` + dead + `"}`:      1,
		`postern_upstream_messages_total{result="accepted",upstream="` + pf.Addr + `"}`: n,
		`postern_upstream_healthy{upstream="` + dead + `"}`:                             0,
		`postern_upstream_healthy{upstream="` + pf.Addr + `"}`:                          1,
	} {
		if got, ok := m[key]; !ok || got != want {
			t.Errorf("%s = %v (exported: %v), want %v", key, got, ok, want)
		}
	}
	if s := opsStatus(t, "http://"+metrics+"/readyz"); s != 200 {
		t.Errorf("/readyz with one of two upstreams up: %d, want 200", s)
	}
}

// TestUpstreamFailoverBrokenE2E (b and the dribble): an upstream that
// answers 421 at the greeting, one that answers MAIL with 451, and one that
// accepts the connection and stays silent (bounded by the dial timeout,
// here --upstream-timeout 2s) each give way to the next upstream, a real
// Postfix: the client sees 250 and the message is delivered once.
func TestUpstreamFailoverBrokenE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	delivered := 0
	for _, c := range []struct{ mode, logMsg string }{
		{"greet421", `msg="upstream unavailable"`},
		{"mail451", `msg="upstream deferred sender, trying the next"`},
		{"silent", `msg="upstream unavailable"`},
	} {
		t.Run(c.mode, func(t *testing.T) {
			broken := brokenUpstream(t, c.mode)
			p := startPostern(t, broken, "--upstream", pf.Addr, "--upstream-timeout", "2s")
			cl := dialAuth(t, p.StartTLS, aliceLogin, alicePass)
			marker := "broken-" + c.mode
			if stage, err := submitMarked(cl, marker); err != nil {
				t.Fatalf("%s: %v, want 250 from the second upstream", stage, err)
			}
			cl.Quit()
			delivered++
			pf.WaitMessages(t, delivered, 30*time.Second)
			seen := map[string]int{}
			markersIn(t, pf, seen)
			if seen[marker] != 1 {
				t.Errorf("%s delivered %d times, want 1", marker, seen[marker])
			}
			if len(waitLines(t, p, 1, c.logMsg, "upstream="+broken)) == 0 {
				t.Errorf("no %s line for upstream=%s:\n%s", c.logMsg, broken, p.Log())
			}
			if len(waitLines(t, p, 1, `msg="message accepted"`, "upstream="+pf.Addr)) != 1 {
				t.Errorf("the message line does not name upstream=%s:\n%s", pf.Addr, p.Log())
			}
		})
	}
}

// TestUpstreamAllDownE2E (d): with every upstream down the client gets
// the same 451 4.4.1 as with one, at the first RCPT, and /readyz answers
// 503 naming each upstream it tried.
func TestUpstreamAllDownE2E(t *testing.T) {
	t.Parallel()
	a, b := testkit.FreeAddr(t), testkit.FreeAddr(t)
	metrics := testkit.FreeAddr(t)
	p := startPostern(t, a, "--upstream", b, "--metrics", metrics)
	p.waitLog(t, `msg="metrics listening"`, 10*time.Second)
	c := dialAuth(t, p.StartTLS, aliceLogin, alicePass)
	defer c.Close()
	var se *smtp.SMTPError
	if stage, err := submitMarked(c, "all-down"); stage != "rcpt" || !errors.As(err, &se) || se.Code != 451 || se.EnhancedCode != (smtp.EnhancedCode{4, 4, 1}) {
		t.Errorf("with every upstream down: %s: %v, want 451 4.4.1 at RCPT", stage, err)
	}
	for _, addr := range []string{a, b} {
		if len(waitLines(t, p, 1, `msg="upstream unavailable"`, "upstream="+addr)) != 1 {
			t.Errorf("upstream %s not tried once:\n%s", addr, p.Log())
		}
	}
	resp, err := http.Get("http://" + metrics + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(body), a) || !strings.Contains(string(body), b) {
		t.Errorf("/readyz with every upstream down: %d %q, want 503 naming %s and %s", resp.StatusCode, body, a, b)
	}
}

// TestUpstreamFailoverUnderLoadE2E (c): 200 messages over 20 connections
// to two real Postfix instances; the first is stopped once 60 are
// accepted. No message is refused before its DATA (the second could take
// it); a message whose transaction was open on the stopped one gets 4xx
// at DATA and the client's retry lands; after the first is started again
// and both queues are empty, every message is in exactly one maildir.
func TestUpstreamFailoverUnderLoadE2E(t *testing.T) {
	t.Parallel()
	const conns, perConn, stopAfter, maxTries = 20, 10, 60, 5
	pfA := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	pfB := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	// One client address for all: the lockout must not take the
	// concurrent logins (and the retries' new ones) for a guesser.
	p := startPostern(t, pfA.Addr, "--upstream", pfB.Addr, "--limit-messages", "*", "--limit-recipients", "*",
		"--auth-max-failures", "1000", "--auth-max-unavailable", "1000")
	// The connections log in one after the other before the load: the
	// first verification is cached for the others.
	first := make([]*smtp.Client, conns)
	for w := range first {
		first[w] = dialAuth(t, p.StartTLS, aliceLogin, alicePass)
	}

	var accepted atomic.Int64
	stopped := make(chan struct{})
	var stopOnce sync.Once
	var mu sync.Mutex
	var refusedEarly, inFlight []string // "marker: stage: error"
	var wg sync.WaitGroup
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := first[w]
			defer func() {
				if c != nil {
					c.Quit()
				}
			}()
			for i := range perConn {
				marker := fmt.Sprintf("load-%02d-%02d", w, i)
				for try := 1; ; try++ {
					if c == nil {
						var err error
						if c, err = dialAuthErr(p.StartTLS); err != nil {
							t.Errorf("%s: connecting to postern: %v", marker, err)
							return
						}
					}
					stage, err := submitMarked(c, marker)
					if err == nil {
						if accepted.Add(1) == stopAfter {
							stopOnce.Do(func() { go func() { pfA.Stop(); close(stopped) }() })
						}
						break
					}
					var se *smtp.SMTPError
					mu.Lock()
					if stage == "data" {
						inFlight = append(inFlight, fmt.Sprintf("%s: %s: %v", marker, stage, err))
					} else {
						refusedEarly = append(refusedEarly, fmt.Sprintf("%s: %s: %v", marker, stage, err))
					}
					mu.Unlock()
					if errors.As(err, &se) && se.Code/100 == 5 || try == maxTries {
						t.Errorf("%s: given up after %d tries: %s: %v", marker, try, stage, err)
						break
					}
					c.Close() // a mail client retries on a new connection
					c = nil
				}
			}
		}()
	}
	wg.Wait()
	select {
	case <-stopped:
	case <-time.After(60 * time.Second):
		t.Fatalf("the first Postfix was never stopped (%d accepted)", accepted.Load())
	}
	if len(refusedEarly) > 0 {
		t.Errorf("%d refusals before DATA while the second upstream was up:\n%s", len(refusedEarly), strings.Join(refusedEarly, "\n"))
	}
	t.Logf("%d messages accepted; %d got 4xx at DATA (in flight on the stopped upstream) and were retried", accepted.Load(), len(inFlight))
	for _, f := range inFlight {
		t.Log("  ", f)
	}

	pfA.Start() // what it queued before the stop is delivered now
	waitQueuedDelivered(t, pfA, 60*time.Second)
	pfB.WaitQueueEmpty(t, 60*time.Second)
	inA, inB := map[string]int{}, map[string]int{}
	markersIn(t, pfA, inA)
	markersIn(t, pfB, inB)
	retried := map[string]bool{}
	for _, f := range inFlight {
		retried[strings.SplitN(f, ":", 2)[0]] = true
	}
	for w := range conns {
		for i := range perConn {
			marker := fmt.Sprintf("load-%02d-%02d", w, i)
			switch n := inA[marker] + inB[marker]; {
			case n == 0:
				t.Errorf("%s lost: in neither maildir", marker)
			case n > 1 && retried[marker]:
				// Its final dot reached the stopped upstream, which
				// queued it and was gone before its 250 came back:
				// SMTP cannot tell the client, which retried.
				t.Logf("%s delivered %d times (A %d, B %d): its 250 was lost with the stopped upstream", marker, n, inA[marker], inB[marker])
			case n > 1 && inB[marker] == 0:
				// Only in the stopped Postfix, twice: it delivered the
				// message and was stopped before removing its queue file,
				// so its restart delivered it again (Postfix's own
				// at-least-once; Postern sends a message's DATA once).
				t.Logf("%s delivered %d times by the stopped upstream A: its redelivery after the restart", marker, n)
			case n > 1:
				t.Errorf("%s delivered %d times (A %d, B %d)", marker, n, inA[marker], inB[marker])
			}
		}
	}
	if len(inA) == 0 || len(inB) == 0 {
		t.Errorf("messages per upstream: A %d, B %d; want both (A before its stop, B after)", len(inA), len(inB))
	}
	t.Logf("delivered by A (stopped after %d): %d, by B: %d", stopAfter, len(inA), len(inB))
}

// dialAuthErr is dialAuth returning its error (for goroutines).
func dialAuthErr(addr string) (*smtp.Client, error) {
	c, err := smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return nil, err
	}
	if err := c.Auth(sasl.NewPlainClient("", aliceLogin, alicePass)); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// waitQueuedDelivered waits until pf has delivered every queued message. A
// file left in incoming/ is a message whose receipt the stop cut short (its
// cleanup was killed): it was never queued, never acknowledged with 250,
// and Postfix never delivers it, so it is logged, not waited for.
func waitQueuedDelivered(t *testing.T, pf *proxytest.Postfix, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var queued, cut []string
		for _, f := range pf.QueueFiles(t) {
			if strings.HasPrefix(f, "incoming/") {
				cut = append(cut, f)
			} else {
				queued = append(queued, f)
			}
		}
		if len(queued) == 0 {
			if len(cut) > 0 {
				t.Logf("receipts cut short by the stop, never queued: %v", cut)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("test Postfix queue not delivered after %v: %v", timeout, queued)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
