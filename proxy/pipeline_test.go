package proxy

import (
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postern/postern/limits"
	"github.com/postern/postern/limits/state"
	"github.com/postern/postern/proxy/proxytest"
)

// The upstream MAIL travels with the first RCPT (one round trip for
// both). These tests pin what a client sees: MAIL is answered at once, an
// upstream refusal of MAIL is the reply to RCPT, and no message the
// upstream refused is ever answered 250.

// TestMailWithoutRcptCostsUpstreamNothing: MAIL then RSET, or MAIL then
// QUIT, never opens an upstream connection.
func TestMailWithoutRcptCostsUpstreamNothing(t *testing.T) {
	env := startServer(t, proxytest.UpstreamOptions{})
	c := dialClient(t, env.starttls, false).ready(testUser, testPass)
	c.cmd("MAIL FROM:<"+testUser+">", 250, "")
	c.cmd("RSET", 250, "")
	c.cmd("MAIL FROM:<"+testUser+">", 250, "")
	c.cmd("QUIT", 221, "")
	env.stop()
	if n := env.up.Connections(); n != 0 {
		t.Fatalf("upstream connections = %d, want 0: nothing to send before a RCPT", n)
	}
}

// TestUpstreamMailRefusedAtRcpt: the upstream's refusal of MAIL is the
// reply to every RCPT of the transaction, with the upstream's own text;
// DATA is refused and nothing is delivered. The next transaction on the
// same session works once the upstream accepts again.
func TestUpstreamMailRefusedAtRcpt(t *testing.T) {
	refusal := &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "sender refused by policy"}
	env := startServer(t, proxytest.UpstreamOptions{MailError: refusal})
	c := dialClient(t, env.starttls, false).ready(testUser, testPass)
	c.cmd("MAIL FROM:<"+testUser+">", 250, "")
	c.cmd("RCPT TO:<bob@example.test>", 553, "5.7.1 sender refused by policy")
	c.cmd("RCPT TO:<carol@example.test>", 553, "5.7.1 sender refused by policy")
	if code, text := c.reply2("DATA"); code/100 == 2 || code == 354 {
		t.Fatalf("DATA after a refused MAIL: %d %s", code, text)
	}
	c.cmd("RSET", 250, "")

	env.up.SetOptions(proxytest.UpstreamOptions{})
	if code, text := c.sendMessage(testUser, []string{"bob@example.test"}, simpleBody); code != 250 {
		t.Fatalf("after the upstream accepts again: %d %q", code, text)
	}
	c.cmd("QUIT", 221, "")
	env.stop()
	msgs := env.up.Messages()
	if len(msgs) != 1 || msgs[0].From != testUser {
		t.Fatalf("upstream messages %+v, want only the second one", msgs)
	}
}

// TestUpstreamMailAcceptedRcptRefused: MAIL goes through, the first RCPT
// is refused with the upstream's reply, the next one is relayed in the
// same upstream transaction and the message reaches only that recipient.
func TestUpstreamMailAcceptedRcptRefused(t *testing.T) {
	env := startServer(t, proxytest.UpstreamOptions{RejectRcpt: map[string]*smtp.SMTPError{
		"nobody@example.test": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"},
	}})
	c := dialClient(t, env.starttls, false).ready(testUser, testPass)
	c.cmd("MAIL FROM:<"+testUser+">", 250, "")
	c.cmd("RCPT TO:<nobody@example.test>", 550, "5.1.1 no such user")
	c.cmd("RCPT TO:<bob@example.test>", 250, "")
	c.cmd("DATA", 354, "")
	c.sendRaw(simpleBody + ".\r\n")
	c.expect(250, "")
	msgs := env.up.WaitMessages(t, 1, 5*time.Second)
	if got := msgs[0].Rcpts; len(got) != 1 || got[0] != "bob@example.test" {
		t.Fatalf("upstream recipients %q, want only bob", got)
	}
}

// TestUpstreamDownRefusedAtRcpt: with the upstream down, MAIL is
// accepted and every RCPT gets the temporary failure; never a 250 for
// the message.
func TestUpstreamDownRefusedAtRcpt(t *testing.T) {
	env := startServer(t, proxytest.UpstreamOptions{})
	env.up.Close()
	c := dialClient(t, env.starttls, false).ready(testUser, testPass)
	c.cmd("MAIL FROM:<"+testUser+">", 250, "")
	c.cmd("RCPT TO:<bob@example.test>", 451, "4.4.1")
	c.cmd("RCPT TO:<carol@example.test>", 451, "4.4.1")
	if code, text := c.reply2("DATA"); code/100 == 2 || code == 354 {
		t.Fatalf("DATA with the upstream down: %d %s", code, text)
	}
}

// TestPipelinedClientRepliesInOrder: a client that sends the whole
// envelope in one packet (RFC 2920) gets every reply, in order, with the
// refused recipient's reply in its place; two messages in a row.
func TestPipelinedClientRepliesInOrder(t *testing.T) {
	env := startServer(t, proxytest.UpstreamOptions{RejectRcpt: map[string]*smtp.SMTPError{
		"nobody@example.test": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"},
	}})
	c := dialClient(t, env.starttls, false).ready(testUser, testPass)
	for i := 0; i < 2; i++ {
		c.sendRaw("MAIL FROM:<" + testUser + ">\r\nRCPT TO:<bob@example.test>\r\nRCPT TO:<nobody@example.test>\r\n" +
			"RCPT TO:<carol@example.test>\r\nDATA\r\n")
		c.expect(250, "")
		c.expect(250, "")
		c.expect(550, "5.1.1 no such user")
		c.expect(250, "")
		c.expect(354, "")
		c.sendRaw(simpleBody + ".\r\nRSET\r\nNOOP\r\n")
		c.expect(250, "")
		c.expect(250, "")
		c.expect(250, "")
	}
	msgs := env.up.WaitMessages(t, 2, 5*time.Second)
	for _, m := range msgs {
		if strings.Join(m.Rcpts, ",") != "bob@example.test,carol@example.test" {
			t.Fatalf("upstream recipients %q", m.Rcpts)
		}
	}
}

// reply2 sends a command and returns its reply, whatever it is.
func (c *testClient) reply2(line string) (int, string) {
	c.t.Helper()
	c.send(line)
	return c.reply()
}

// TestPostfixMailRefusedAtRcpt: a real Postfix that refuses the sender at
// MAIL (smtpd_delay_reject = no) — the client hears Postfix's refusal at
// RCPT, DATA is refused, and Postfix queues nothing. A control message
// from another sender goes through.
func TestPostfixMailRefusedAtRcpt(t *testing.T) {
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{MainCF: []string{
		"smtpd_delay_reject = no",
		"smtpd_sender_restrictions = check_sender_access inline:{refused@example.test=REJECT}",
	}})
	env := startServer(t, proxytest.UpstreamOptions{}, func(c *Config) {
		c.Upstream.Addr = pf.Addr
		c.Auth = &fakeAuth{users: map[string]string{testUser: testPass, "refused@example.test": "r3f"}}
	})
	c := dialClient(t, env.starttls, false).ready("refused@example.test", "r3f")
	c.cmd("MAIL FROM:<refused@example.test>", 250, "")
	c.cmd("RCPT TO:<bob@example.test>", 554, "Sender address rejected")
	if code, text := c.reply2("DATA"); code/100 == 2 || code == 354 {
		t.Fatalf("DATA after Postfix refused MAIL: %d %s", code, text)
	}
	pf.WaitLog(t, "reject: MAIL from", 10*time.Second)
	c.cmd("QUIT", 221, "")
	c = dialClient(t, env.starttls, false).ready(testUser, testPass)
	if code, text := c.sendMessage(testUser, []string{"bob@example.test"}, "Subject: control\r\n\r\nok\r\n"); code != 250 {
		t.Fatalf("control message: %d %q", code, text)
	}
	c.cmd("QUIT", 221, "")
	msgs := pf.WaitMessages(t, 1, 20*time.Second)
	for _, m := range msgs {
		if strings.Contains(string(m.Raw), "refused@example.test") {
			t.Fatalf("Postfix delivered a message from the refused sender:\n%s", m.Raw)
		}
	}
}

// TestUpstreamMailRefusedNotCounted: with the upstream MAIL sent along with
// the first RCPT, a MAIL the upstream refuses surfaces at RCPT; the message
// and the recipient reserved for it were not sent, so neither counts
// towards the login's limits (a client retrying a refused message must not
// use up its window), while a message the upstream accepts does.
func TestUpstreamMailRefusedNotCounted(t *testing.T) {
	refusal := &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
	store := state.NewMemory(state.MemoryConfig{})
	lim := limits.NewLimits(limits.LimitsConfig{Store: store, Messages: limits.Rate{N: 2, Window: time.Hour}, Recipients: limits.Rate{N: 2, Window: time.Hour}})
	env := startServer(t, proxytest.UpstreamOptions{MailError: refusal}, func(c *Config) { c.Limits = lim })
	c := dialClient(t, env.starttls, false).ready(testUser, testPass)
	for range 5 {
		c.cmd("MAIL FROM:<"+testUser+">", 250, "")
		c.cmd("RCPT TO:<bob@example.test>", 451, "4.3.0 try later")
		c.cmd("RSET", 250, "")
	}
	env.up.SetOptions(proxytest.UpstreamOptions{})
	for i := range 2 {
		if code, text := c.sendMessage(testUser, []string{"bob@example.test"}, simpleBody); code != 250 {
			t.Fatalf("message %d after five refused ones: %d %s", i+1, code, text)
		}
	}
	c.cmd("MAIL FROM:<"+testUser+">", 451, "4.7.1 Sending limit reached for "+testUser)
	c.cmd("QUIT", 221, "")
	env.stop()
	if n := len(env.up.Messages()); n != 2 {
		t.Fatalf("upstream got %d messages, want 2", n)
	}
}
