package proxy

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/limits"
	"github.com/postern/postern/policy"
	"github.com/postern/postern/proxy/proxytest"
)

// spellingAuth is a backend with one account reachable by several
// spellings, as LDAP with (|(uid=%u)(mail=%u)) gives it, and one that
// accepts any domain, as Dovecot with auth_username_format=%Ln does.
type spellingAuth struct{}

const accountPass = "pw"

func (spellingAuth) Authenticate(_ context.Context, req auth.Request) (auth.Result, error) {
	var res auth.Result
	switch local, _, _ := strings.Cut(req.Login, "@"); {
	case req.Login == "mallory" || req.Login == "mallory@example.com" || req.Login == "m.allory@example.com":
		res = auth.Result{Login: "mallory@example.com", Names: []string{"mallory", "m.allory@example.com"}}
	case local == "dave": // %Ln: dave@anything is dave
		res = auth.Result{Login: "dave"}
	default:
		return auth.Result{}, auth.ErrInvalidCredentials
	}
	if req.Password != accountPass {
		return auth.Result{Login: res.Login}, auth.ErrInvalidCredentials
	}
	return res, nil
}

// delayRecorder is a Lockout that remembers which logins LoginDelay was
// asked about.
type delayRecorder struct {
	*limits.Lockout
	mu     sync.Mutex
	delays []string
}

func (d *delayRecorder) LoginDelay(login string) time.Duration {
	d.mu.Lock()
	d.delays = append(d.delays, login)
	d.mu.Unlock()
	return d.Lockout.LoginDelay(login)
}

func (d *delayRecorder) asked() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.delays)
}

// TestAuthAccountAcrossSpellings: wrong passwords on two spellings of one
// account both count against the account, whose delay is then applied
// (after the verification named it) to a guess on a third spelling; the
// owner's success clears it.
func TestAuthAccountAcrossSpellings(t *testing.T) {
	lim := &delayRecorder{Lockout: limits.NewLockout(limits.LockoutConfig{LoginDelayBase: time.Millisecond, MaxLoginDelay: 2 * time.Millisecond})}
	env := startServer(t, proxytest.UpstreamOptions{}, func(c *Config) { c.Auth, c.Limiter = spellingAuth{}, lim })
	for _, spelling := range []string{"mallory", "m.allory@example.com"} {
		dialClient(t, env.starttls, false).ready("", "").authPlain(spelling, "guess", 535, "5.7.8")
	}
	if d := lim.Lockout.LoginDelay("mallory@example.com"); d == 0 {
		t.Fatal("two wrong passwords on two spellings left the account without a login delay")
	}
	before := len(lim.asked())
	dialClient(t, env.starttls, false).ready("", "").authPlain("MALLORY@example.com", "guess", 535, "5.7.8")
	// "MALLORY@example.com" folds to the account's identity: one delay,
	// asked before verifying.
	if got := lim.asked()[before:]; !slices.Equal(got, []string{"MALLORY@example.com"}) {
		t.Fatalf("delays asked for %q, want only the typed spelling (it is the account)", got)
	}
	before = len(lim.asked())
	dialClient(t, env.starttls, false).ready("", "").authPlain("mallory", "guess", 535, "5.7.8")
	if got := lim.asked()[before:]; !slices.Equal(got, []string{"mallory", "mallory@example.com"}) {
		t.Fatalf("delays asked for %q, want the typed spelling, then the account it named", got)
	}
	dialClient(t, env.starttls, false).ready("", "").authPlain("m.allory@example.com", accountPass, 235, "")
	if d := lim.Lockout.LoginDelay("mallory@example.com"); d != 0 {
		t.Fatalf("the owner's success left the account a login delay of %v", d)
	}
	if !strings.Contains(env.log.String(), `login=m.allory@example.com account=mallory@example.com conn_failures=1`) {
		t.Fatalf("the auth failed line does not name the account:\n%s", env.log.String())
	}
}

// TestSenderMapAccountNames: a sender-map line naming any of the account's
// names (its canonical identity, or a name its backend stores) applies
// whichever spelling logged in; the typed spelling itself grants nothing,
// neither as an address nor as a sender-map login: with a backend that
// takes any domain (Dovecot's %Ln) it would hand out every address.
func TestSenderMapAccountNames(t *testing.T) {
	env := startServer(t, proxytest.UpstreamOptions{}, func(c *Config) { c.Auth = spellingAuth{} })
	m, err := policy.ParseSenderMap(strings.NewReader("by-uid@example.com mallory\nceo@bank.test dave@bank.test\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	env.srv.SetSenderMap(m)
	for _, spelling := range []string{"mallory", "m.allory@example.com", "mallory@example.com"} {
		c := dialClient(t, env.starttls, false).ready(spelling, accountPass)
		c.cmd("MAIL FROM:<by-uid@example.com>", 250, "")
		c.cmd("RSET", 250, "")
		c.cmd("MAIL FROM:<m.allory@example.com>", 250, "") // a name of the account, an address
	}
	c := dialClient(t, env.starttls, false).ready("dave@bank.test", accountPass)
	c.cmd("MAIL FROM:<dave@bank.test>", 553, "5.7.1")
	c.cmd("MAIL FROM:<ceo@bank.test>", 553, "5.7.1")
}
