package main

import (
	"testing"
	"time"

	"github.com/postern/postern/proxy/proxytest"
)

// TestSuspendedAuthLikeWrongPasswordE2E: AUTH of a suspended login with its
// right password must look exactly like a wrong password, the connection
// cut included. Otherwise a guesser that spends two wrong passwords per
// connection learns from the third whether it is right (535 and the
// connection kept, instead of 421 and closed), and one connection gets
// unlimited AUTH attempts (each a backend check and a log line).
func TestSuspendedAuthLikeWrongPasswordE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	p := startPostern(t, pf.Addr, "--limit-messages", "1/1h", "--suspend-after", "2", "--auth-max-failures", "3")
	c := dialAuth(t, p.StartTLS, aliceLogin, alicePass)
	defer c.Close()
	if stage, err := sendOn(t, c, aliceLogin, []string{"friend@example.test"}, "ok"); err != nil {
		t.Fatalf("first message refused at %s: %v", stage, err)
	}
	_, err := sendOn(t, c, aliceLogin, []string{"friend@example.test"}, "over")
	wantLimitReply(t, "the second MAIL", err, aliceLogin)
	p.waitLog(t, "event=suspension login=alice@example.test", 10*time.Second)

	third := func(ip, password string) (string, bool) {
		c := dialFrom(t, p.StartTLS, ip)
		for i := 0; i < 2; i++ {
			expectReply(t, "a wrong password", c.auth(aliceLogin, "wrong"), "535 5.7.8")
		}
		r := c.auth(aliceLogin, password)
		return r, c.closed()
	}
	wrongReply, wrongClosed := third("127.0.0.2", "wrong")
	rightReply, rightClosed := third("127.0.0.3", alicePass)
	if rightReply != wrongReply || rightClosed != wrongClosed {
		t.Fatalf("third AUTH of suspended alice: right password %q (closed %v), wrong one %q (closed %v): "+
			"the difference tells a guesser the password", rightReply, rightClosed, wrongReply, wrongClosed)
	}
	p.waitLog(t, `msg="auth refused: login suspended"`, 10*time.Second)
}
