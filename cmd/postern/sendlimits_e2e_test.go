package main

// End-to-end tests of the per-login sending limits, suspensions, alerts and
// the From: header check (issue 12) through the built binary, with a real
// Postfix as the upstream.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/testkit"
	"github.com/postern/postern/proxy/proxytest"
)

// limitText is the 451 text of a login over its limit.
func limitText(login string) string {
	return "Sending limit reached for " + login + ", try again later"
}

// sendOn sends one message on an authenticated client and returns the
// stage ("mail", "rcpt", "data") and reply of the first refusal, or "" and
// nil when the upstream accepted it. Refused recipients are skipped while
// another is accepted.
func sendOn(t *testing.T, c *smtp.Client, from string, to []string, subject string) (string, error) {
	t.Helper()
	if err := c.Mail(from, nil); err != nil {
		return "mail", err
	}
	var accepted int
	var rcptErr error
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			rcptErr = err
			continue
		}
		accepted++
	}
	if accepted == 0 {
		_ = c.Reset()
		return "rcpt", rcptErr
	}
	w, err := c.Data()
	if err != nil {
		return "data", err
	}
	fmt.Fprintf(w, "From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\nhello\r\n", from, to[0], subject)
	if err := w.Close(); err != nil {
		return "data", err
	}
	if rcptErr != nil {
		return "rcpt", rcptErr
	}
	return "", nil
}

// wantLimitReply checks err is 451 4.7.1 with the limit text for login.
func wantLimitReply(t *testing.T, what string, err error, login string) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 451 || se.EnhancedCode != (smtp.EnhancedCode{4, 7, 1}) || se.Message != limitText(login) {
		t.Fatalf("%s: got %v, want 451 4.7.1 %s", what, err, limitText(login))
	}
}

func wantCode(t *testing.T, what string, err error, code int) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != code {
		t.Fatalf("%s: got %v, want %d", what, err, code)
	}
}

// TestSendLimitMessagesE2E: at --limit-messages 5/1h a login's sixth MAIL
// within the hour gets 451 4.7.1 naming it, at MAIL, on any session; the
// log line is written once however many attempts follow; the metric counts
// every refused attempt; another login is unaffected; Postfix got exactly
// five of alice's messages. A MAIL abandoned with RSET counts (the client
// cannot dodge the count by aborting), a MAIL Postfix refused does not.
func TestSendLimitMessagesE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	p, metrics := startLimited(t, pf.Addr, "--limit-messages", "5/1h", "--suspend-after", "0")
	c := dialAuth(t, p.StartTLS, aliceLogin, alicePass)
	defer c.Close()
	for i := 1; i <= 4; i++ {
		if stage, err := sendOn(t, c, aliceLogin, []string{"friend@example.test"}, fmt.Sprintf("m%d", i)); err != nil {
			t.Fatalf("message %d refused at %s: %v", i, stage, err)
		}
	}
	// The fifth is a MAIL given up with RSET: it counts.
	if err := c.Mail(aliceLogin, nil); err != nil {
		t.Fatalf("MAIL 5: %v", err)
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	_, err := sendOn(t, c, aliceLogin, []string{"friend@example.test"}, "m6")
	wantLimitReply(t, "the sixth MAIL", err, aliceLogin)
	// A fresh session of the same login is over the limit too.
	c2 := dialAuth(t, p.StartTLS, aliceLogin, alicePass)
	defer c2.Close()
	for i := 0; i < 3; i++ {
		_, err := sendOn(t, c2, aliceLogin, []string{"friend@example.test"}, "again")
		wantLimitReply(t, "a MAIL on a new session", err, aliceLogin)
	}
	// bob has his own count.
	cb := dialAuth(t, p.StartTLS, bobLogin, bobPass)
	defer cb.Close()
	if stage, err := sendOn(t, cb, bobLogin, []string{"friend@example.test"}, "bob"); err != nil {
		t.Fatalf("bob refused at %s: %v", stage, err)
	}
	pf.WaitMessages(t, 5, 30*time.Second)
	limMetric(t, metrics, `postern_limit_reached_total{limit="messages"}`, 4)
	if n := strings.Count(p.Log(), `msg="sending limit reached" login=alice@example.test limit=messages`); n != 1 {
		t.Fatalf("want one fail2ban line for 4 refused attempts, got %d:\n%s", n, p.Log())
	}
	if got := len(proxytest.MessagesTo(pf.Messages(t), "friend@example.test")); got != 5 {
		t.Fatalf("Postfix got %d messages, want 4 of alice's and 1 of bob's", got)
	}
}

// TestSendLimitUpstreamRefusalE2E: messages Postfix refuses at the final
// dot (a header_checks REJECT) are not counted against --limit-messages:
// at 2/1h, two refused ones and then two accepted ones pass, and only the
// third accepted one gets 451 4.7.1.
func TestSendLimitUpstreamRefusalE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{
		MainCF: []string{"header_checks = regexp:{ {/^Subject: reject-me/ REJECT no thanks} }"},
	})
	p := startPostern(t, pf.Addr, "--limit-messages", "2/1h", "--suspend-after", "0")
	c := dialAuth(t, p.StartTLS, aliceLogin, alicePass)
	defer c.Close()
	for i := 0; i < 2; i++ {
		_, err := sendOn(t, c, aliceLogin, []string{"friend@example.test"}, "reject-me")
		wantCode(t, "a message Postfix refuses", err, 550)
	}
	for i := 0; i < 2; i++ {
		if stage, err := sendOn(t, c, aliceLogin, []string{"friend@example.test"}, "fine"); err != nil {
			t.Fatalf("message %d after two refused ones: refused at %s: %v", i+1, stage, err)
		}
	}
	_, err := sendOn(t, c, aliceLogin, []string{"friend@example.test"}, "fine")
	wantLimitReply(t, "the third accepted message", err, aliceLogin)
}

// TestSendLimitRecipientsE2E: at --limit-recipients 5/1h only recipients
// Postfix accepted count; the RCPT that would be the sixth gets 451 4.7.1
// and the message still goes to those accepted.
func TestSendLimitRecipientsE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	p := startPostern(t, pf.Addr, "--limit-recipients", "5/1h", "--suspend-after", "0", "--suspend-rejected-ratio", "0")
	c := dialAuth(t, p.StartTLS, aliceLogin, alicePass)
	defer c.Close()
	// Three recipients accepted, one refused by Postfix (not counted).
	stage, err := sendOn(t, c, aliceLogin, []string{"r1@example.test", proxytest.RejectedRecipient, "r2@example.test", "r3@example.test"}, "first")
	if stage != "rcpt" {
		t.Fatalf("first message: stage %q err %v, want the refused recipient only", stage, err)
	}
	wantCode(t, "rejected@", err, 550)
	// Two more fit; the RCPT that would cross the limit gets 451 4.7.1, and
	// the message goes to the two.
	if err := c.Mail(aliceLogin, nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"r4@example.test", "r5@example.test"} {
		if err := c.Rcpt(r, nil); err != nil {
			t.Fatalf("RCPT %s: %v", r, err)
		}
	}
	wantLimitReply(t, "the sixth recipient", c.Rcpt("r6@example.test", nil), aliceLogin)
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Subject: second\r\n\r\nhi\r\n")
	if err := w.Close(); err != nil {
		t.Fatalf("DATA to the two accepted recipients: %v", err)
	}
	msgs := pf.WaitMessages(t, 5, 30*time.Second)
	if n := len(proxytest.MessagesTo(msgs, "r6@example.test")); n != 0 {
		t.Fatalf("r6 got %d messages", n)
	}
	if n := len(proxytest.MessagesTo(msgs, "r5@example.test")); n != 1 {
		t.Fatalf("r5 got %d messages, want 1", n)
	}
}

// TestSendLimitDefault200E2E: with the defaults, 200 messages in an hour
// pass and the 201st gets 451 4.7.1.
func TestSendLimitDefault200E2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	p := startPostern(t, pf.Addr)
	c := dialAuth(t, p.StartTLS, aliceLogin, alicePass)
	defer c.Close()
	start := time.Now()
	for i := 1; i <= 200; i++ {
		if stage, err := sendOn(t, c, aliceLogin, []string{"friend@example.test"}, fmt.Sprintf("n%d", i)); err != nil {
			t.Fatalf("message %d refused at %s: %v", i, stage, err)
		}
	}
	_, err := sendOn(t, c, aliceLogin, []string{"friend@example.test"}, "n201")
	wantLimitReply(t, "the 201st message", err, aliceLogin)
	t.Logf("201 messages in %v", time.Since(start).Round(time.Millisecond))
	pf.WaitMessages(t, 200, 60*time.Second)
}

// TestLimitFileE2E: the limit file overrides the default per login and per
// @domain, "*" lifts the limit, and SIGHUP loads a new file (a broken one
// keeps the old).
func TestLimitFileE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	limitFile := filepath.Join(t.TempDir(), "limits")
	writeFile(t, limitFile, "# per login, then per domain\nalice@example.test *\n@example.test messages=2/1h\n")
	p := startPostern(t, pf.Addr, "--limit-messages", "1/1h", "--limit-file", limitFile, "--suspend-after", "0")
	ca := dialAuth(t, p.StartTLS, aliceLogin, alicePass)
	defer ca.Close()
	for i := 0; i < 4; i++ {
		if stage, err := sendOn(t, ca, aliceLogin, []string{"friend@example.test"}, "alice"); err != nil {
			t.Fatalf("alice (*) message %d refused at %s: %v", i, stage, err)
		}
	}
	cb := dialAuth(t, p.StartTLS, bobLogin, bobPass)
	defer cb.Close()
	for i := 0; i < 2; i++ {
		if stage, err := sendOn(t, cb, bobLogin, []string{"friend@example.test"}, "bob"); err != nil {
			t.Fatalf("bob (@example.test 2/1h) message %d refused at %s: %v", i, stage, err)
		}
	}
	_, err := sendOn(t, cb, bobLogin, []string{"friend@example.test"}, "bob3")
	wantLimitReply(t, "bob's third", err, bobLogin)

	writeFile(t, limitFile, "bob@example.test messages=4/1h\nalice@example.test messages=4/1h\n")
	hup(t, p)
	if stage, err := sendOn(t, cb, bobLogin, []string{"friend@example.test"}, "bob3"); err != nil {
		t.Fatalf("bob after the reload (4/1h) refused at %s: %v", stage, err)
	}
	// alice has sent 4 within the hour (counted while unlimited? no: "*"
	// counts nothing), so 4 more fit.
	for i := 0; i < 4; i++ {
		if stage, err := sendOn(t, ca, aliceLogin, []string{"friend@example.test"}, "alice2"); err != nil {
			t.Fatalf("alice after the reload, message %d refused at %s: %v", i, stage, err)
		}
	}
	_, err = sendOn(t, ca, aliceLogin, []string{"friend@example.test"}, "alice-over")
	wantLimitReply(t, "alice's fifth after the reload", err, aliceLogin)

	writeFile(t, limitFile, "bob@example.test messages=lots\n")
	hup(t, p)
	if !strings.Contains(p.Log(), "limit file kept as before") {
		t.Fatalf("broken limit file not reported:\n%s", p.Log())
	}
	_, err = sendOn(t, ca, aliceLogin, []string{"friend@example.test"}, "alice-over")
	wantLimitReply(t, "alice after a broken reload", err, aliceLogin)
}

// webhook is a test HTTP server collecting alert events.
type webhook struct {
	srv    *httptest.Server
	mu     sync.Mutex
	events []map[string]any
}

func startWebhook(t *testing.T) *webhook {
	wh := &webhook{}
	wh.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev map[string]any
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil || r.Method != http.MethodPost {
			http.Error(w, "bad event", http.StatusBadRequest)
			return
		}
		wh.mu.Lock()
		wh.events = append(wh.events, ev)
		wh.mu.Unlock()
	}))
	t.Cleanup(wh.srv.Close)
	return wh
}

// byEvent returns the events named name received so far.
func (wh *webhook) byEvent(name string) []map[string]any {
	wh.mu.Lock()
	defer wh.mu.Unlock()
	var out []map[string]any
	for _, ev := range wh.events {
		if ev["event"] == name {
			out = append(out, ev)
		}
	}
	return out
}

// posternCLI runs a postern subcommand and returns its output.
func posternCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(posternBin, args...)
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestSuspensionE2E: at --limit-messages 2/1h and --suspend-after 3, the
// sixth attempt within the hour (two sent, four refused) suspends alice:
// AUTH with her right password then gets 535 5.7.8 and a log line of its
// own; the webhook receives exactly one suspension event however many
// attempts follow; `postern status` shows the counters and the
// suspension; `postern unsuspend` lets her in again.
func TestSuspensionE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	wh := startWebhook(t)
	sock := filepath.Join(t.TempDir(), "control.sock")
	p := startPostern(t, pf.Addr, "--limit-messages", "2/1h", "--suspend-after", "3",
		"--alert-webhook", wh.srv.URL, "--control-socket", sock, "--auth-max-failures", "3")
	p.waitLog(t, "control socket listening", 10*time.Second)
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket: %v, mode %v, want 0600", err, fi.Mode())
	}
	c := dialAuth(t, p.StartTLS, aliceLogin, alicePass)
	defer c.Close()
	for i := 0; i < 2; i++ {
		if stage, err := sendOn(t, c, aliceLogin, []string{"friend@example.test"}, "ok"); err != nil {
			t.Fatalf("message %d refused at %s: %v", i, stage, err)
		}
	}
	for i := 0; i < 3; i++ {
		_, err := sendOn(t, c, aliceLogin, []string{"friend@example.test"}, "over")
		wantLimitReply(t, "an attempt over the limit", err, aliceLogin)
	}
	if strings.Contains(p.Log(), "event=suspension") {
		t.Fatalf("suspended after 5 attempts, want at the 6th:\n%s", p.Log())
	}
	// AUTH still works before the threshold.
	dialAuth(t, p.StartTLS, aliceLogin, alicePass).Close()
	for i := 0; i < 4; i++ { // the 6th attempt suspends; more change nothing
		_, err := sendOn(t, c, aliceLogin, []string{"friend@example.test"}, "over")
		wantLimitReply(t, "an attempt over the limit", err, aliceLogin)
	}
	p.waitLog(t, "event=suspension login=alice@example.test limit=messages count=6 max=2", 10*time.Second)

	out, err := swaks(t, p.swaksAuth(aliceLogin, alicePass, "--from", aliceLogin, "--to", "friend@example.test")...)
	if err == 0 || !strings.Contains(out, "535 5.7.8 Authentication credentials invalid") {
		t.Fatalf("AUTH of a suspended login with the right password: want 535 5.7.8:\n%s", out)
	}
	p.waitLog(t, `msg="auth refused: login suspended"`, 10*time.Second)

	status, serr := posternCLI(t, "status", "--control-socket", sock, aliceLogin)
	if serr != nil {
		t.Fatalf("postern status: %v\n%s", serr, status)
	}
	for _, want := range []string{"login alice@example.test", "messages: 2 of 2/1h, 4 attempts over the limit", "suspended since ", "6 messages attempts within 1h"} {
		if !strings.Contains(status, want) {
			t.Fatalf("postern status lacks %q:\n%s", want, status)
		}
	}

	out2, uerr := posternCLI(t, "unsuspend", "--control-socket", sock, aliceLogin)
	if uerr != nil || !strings.Contains(out2, "alice@example.test unsuspended") {
		t.Fatalf("postern unsuspend: %v\n%s", uerr, out2)
	}
	p.waitLog(t, `msg="login unsuspended" login=alice@example.test`, 10*time.Second)
	c2 := dialAuth(t, p.StartTLS, aliceLogin, alicePass)
	defer c2.Close()
	status, _ = posternCLI(t, "status", "--control-socket", sock, aliceLogin)
	if !strings.Contains(status, "not suspended") || !strings.Contains(status, "messages: 2 of 2/1h, 0 attempts over the limit") {
		t.Fatalf("status after unsuspend:\n%s", status)
	}
	// Still over the message limit, though.
	_, err2 := sendOn(t, c2, aliceLogin, []string{"friend@example.test"}, "after")
	wantLimitReply(t, "after unsuspend", err2, aliceLogin)

	// A lockout (another event) is queued behind any second suspension
	// event: once it has arrived, nothing else is coming.
	for i := 0; i < 3; i++ {
		swaks(t, p.swaksAuth(bobLogin, "wrong", "--quit-after", "AUTH")...)
	}
	waitFor(t, "the lockout event", func() bool { return len(wh.byEvent("lockout")) > 0 })
	susp := wh.byEvent("suspension")
	if len(susp) != 1 {
		t.Fatalf("webhook got %d suspension events, want 1: %v", len(susp), susp)
	}
	ev := susp[0]
	if ev["login"] != aliceLogin || ev["limit"] != "messages" || ev["count"] != float64(6) || ev["max"] != float64(2) ||
		ev["client"] != "127.0.0.1" || ev["window"] != "1h" || ev["time"] == nil || ev["until"] == nil {
		t.Fatalf("suspension event: %v", ev)
	}

}

// TestSuspensionRejectedRatioE2E: a login with more than half of at least
// 20 recipients refused by Postfix within the hour is suspended.
func TestSuspensionRejectedRatioE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	p := startPostern(t, pf.Addr, "--max-recipients", "100")
	c := dialAuth(t, p.StartTLS, aliceLogin, alicePass)
	defer c.Close()
	var to []string
	for i := 0; i < 9; i++ {
		to = append(to, fmt.Sprintf("ok%d@example.test", i))
	}
	for i := 0; i < 10; i++ {
		to = append(to, proxytest.RejectedRecipient)
	}
	sendOn(t, c, aliceLogin, to, "harvest") // 19 recipients, 10 refused: not yet 20
	if strings.Contains(p.Log(), "event=suspension") {
		t.Fatalf("suspended below 20 recipients:\n%s", p.Log())
	}
	sendOn(t, c, aliceLogin, []string{proxytest.RejectedRecipient, "ok@example.test"}, "harvest2")
	p.waitLog(t, "event=suspension login=alice@example.test limit=rejected-ratio", 10*time.Second)
	out, _ := swaks(t, p.swaksAuth(aliceLogin, alicePass, "--quit-after", "AUTH")...)
	if !strings.Contains(out, "535 5.7.8") {
		t.Fatalf("AUTH after a rejected-ratio suspension:\n%s", out)
	}
}

// TestSendLimitConcurrencyE2E: 50 sessions of one login send at once
// against --limit-messages 20/1h: exactly 20 messages are accepted, the 30
// others get 451 4.7.1, and Postfix holds 20.
func TestSendLimitConcurrencyE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	p := startPostern(t, pf.Addr, "--limit-messages", "20/1h", "--suspend-after", "0", "--max-connections-per-ip", "0")
	const sessions = 50
	clients := make([]*smtp.Client, sessions)
	for i := range clients {
		clients[i] = dialAuth(t, p.StartTLS, aliceLogin, alicePass)
		defer clients[i].Close()
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, sessions)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = sendOn(t, c, aliceLogin, []string{"crowd@example.test"}, fmt.Sprintf("c%d", i))
		}()
	}
	close(start)
	wg.Wait()
	accepted := 0
	for _, err := range errs {
		if err == nil {
			accepted++
			continue
		}
		wantLimitReply(t, "a parallel message", err, aliceLogin)
	}
	if accepted != 20 {
		t.Fatalf("%d messages accepted, want exactly 20", accepted)
	}
	msgs := pf.WaitMessages(t, 20, 30*time.Second)
	if n := len(proxytest.MessagesTo(msgs, "crowd@example.test")); n != 20 {
		t.Fatalf("Postfix got %d, want 20", n)
	}
}

// TestHeaderFromE2E: with --check-header-from enforce a From: header the
// login does not own gets 553 5.7.1 at the end of DATA and nothing reaches
// Postfix; the login's own From: (also folded, with a display name) passes;
// warn delivers and logs.
func TestHeaderFromE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	p := startPostern(t, pf.Addr, "--check-header-from", "enforce")
	send := func(p *postern, header string) error {
		c := dialAuth(t, p.StartTLS, aliceLogin, alicePass)
		defer c.Close()
		if err := c.Mail(aliceLogin, nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt("friend@example.test", nil); err != nil {
			t.Fatal(err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, header+"To: friend@example.test\r\n\r\n"+strings.Repeat("body line\r\n", 2000))
		return w.Close()
	}
	err := send(p, "Subject: spoof\r\nFrom: \"Bank\" <ceo@bank.test>\r\n")
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 553 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) {
		t.Fatalf("spoofed From: got %v, want 553 5.7.1", err)
	}
	for _, h := range []string{
		"Subject: two\r\nFrom: alice@example.test\r\nFrom: ceo@bank.test\r\n",
		"Subject: list\r\nFrom: alice@example.test, ceo@bank.test\r\n",
		"Subject: none\r\n",
		// A second From: in the obsolete syntax (RFC 5322 §4.5.6).
		"Subject: obs\r\nFrom: alice@example.test\r\nFrom : ceo@bank.test\r\n",
		// A second From: past the 100 KiB the check reads.
		"Subject: long\r\nFrom: alice@example.test\r\n" +
			strings.Repeat("X-Pad: "+strings.Repeat("p", 90)+"\r\n", 1200) + "From: ceo@bank.test\r\n",
	} {
		if err := send(p, h); !errors.As(err, &se) || se.Code != 553 {
			t.Fatalf("%q (%d bytes): got %v, want 553", h[:min(len(h), 80)], len(h), err)
		}
	}
	if err := send(p, "Subject: own\r\nFrom: Alice\r\n <alice@example.test>\r\n"); err != nil {
		t.Fatalf("own From: refused: %v", err)
	}
	msgs := pf.WaitMessages(t, 1, 30*time.Second)
	if err := pf.Log(); strings.Contains(err, "bank.test") {
		t.Fatalf("Postfix saw the spoofed message:\n%s", err)
	}
	for _, m := range msgs {
		if strings.Contains(string(m.Data), "bank.test") {
			t.Fatalf("a spoofed message was delivered:\n%s", m.Data)
		}
	}
	if len(msgs) != 1 {
		t.Fatalf("%d messages delivered, want 1", len(msgs))
	}
	if !strings.Contains(p.Log(), `msg="header from rejected"`) {
		t.Fatalf("no log line for the spoofed From:\n%s", p.Log())
	}

	pw := startPostern(t, pf.Addr, "--check-header-from", "warn")
	if err := send(pw, "Subject: warned\r\nFrom: ceo@bank.test\r\n"); err != nil {
		t.Fatalf("warn mode refused: %v", err)
	}
	pw.waitLog(t, `msg="header from rejected"`, 10*time.Second)
	pf.WaitMessages(t, 2, 30*time.Second)
}

// TestSendLimitRedisReplicasE2E: three instances behind HAProxy (round
// robin, PROXY v2) share --state redis://: alice's 200 messages within the
// hour, spread over the three, use up the default 200/1h, and the 201st
// gets 451 4.7.1 whichever instance takes it. `postern status` reads the
// counters from Redis itself (no running instance needed).
func TestSendLimitRedisReplicasE2E(t *testing.T) {
	t.Parallel()
	redis := testkit.StartRedis(t)
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	ps, all, only, _ := stateReplicas(t, pf.Addr, cheapUsers(t), "--state", redis.URL(), "--control-socket", "none")
	for conn := 0; conn < 50; conn++ { // 50 connections × 4 messages, round robin
		c := dialAuth(t, all, aliceLogin, alicePass)
		for m := 0; m < 4; m++ {
			if stage, err := sendOn(t, c, aliceLogin, []string{"spread@example.test"}, fmt.Sprintf("r%d-%d", conn, m)); err != nil {
				t.Fatalf("message %d refused at %s: %v", conn*4+m+1, stage, err)
			}
		}
		c.Close()
	}
	for i, p := range ps {
		if n := strings.Count(p.Log(), `msg="message accepted"`); n == 0 {
			t.Fatalf("instance %d took none of the 200 messages", i)
		}
	}
	for i, fe := range only {
		c := dialAuth(t, fe, aliceLogin, alicePass)
		_, err := sendOn(t, c, aliceLogin, []string{"spread@example.test"}, "r201")
		wantLimitReply(t, fmt.Sprintf("the 201st message on instance %d", i), err, aliceLogin)
		c.Close()
	}
	out, err := posternCLI(t, "status", "--state", redis.URL(), aliceLogin)
	if err != nil || !strings.Contains(out, "messages: 200 of 200/1h, 3 attempts over the limit") {
		t.Fatalf("postern status --state redis: %v\n%s", err, out)
	}
	msgs := pf.WaitMessages(t, 200, 60*time.Second)
	if n := len(proxytest.MessagesTo(msgs, "spread@example.test")); n != 200 {
		t.Fatalf("Postfix got %d, want 200", n)
	}
}
