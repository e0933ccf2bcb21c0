package dovecot

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/postern/postern/auth/authtest"

	"github.com/postern/postern/auth"
)

func startRealDovecot(t *testing.T) *authtest.Dovecot {
	t.Helper()
	return authtest.StartDovecot(t, []authtest.User{
		{Login: "alice@example.org", Password: "alice-secret", Scheme: "SHA512-CRYPT"},
		{Login: "bob@example.org", Password: "bob-secret", Scheme: "BLF-CRYPT"},
	})
}

func TestDovecotReal(t *testing.T) {
	dv := startRealDovecot(t)
	clients := map[string]*Client{
		"unix": New("unix", dv.Socket, Options{Timeout: 5 * time.Second}, nil),
		"tcp":  New("tcp", dv.TCPAddr, Options{Timeout: 5 * time.Second}, nil),
	}
	for _, c := range clients {
		defer c.Close()
	}
	ctx := context.Background()
	// Each wrong guess comes from its own documentation address, so
	// Dovecot's per-rip auth penalty does not slow the test down.
	rip := 0
	req := func(login, password string) auth.Request {
		rip++
		return auth.Request{Login: login, Password: password, Secured: true,
			RemoteIP: netip.AddrFrom4([4]byte{192, 0, 2, byte(rip)})}
	}
	expectOK := func(t *testing.T, c *Client, login, password, want string) {
		t.Helper()
		res, err := c.Authenticate(ctx, req(login, password))
		if err != nil || res.Login != want {
			t.Fatalf("%s: got %+v, %v; want login %q", login, res, err, want)
		}
	}

	for name, c := range clients {
		t.Run(name, func(t *testing.T) {
			// Dovecot's canonical user= (auth_username_format = %Lu) is
			// the login, whatever case the client typed.
			expectOK(t, c, "Alice@Example.ORG", "alice-secret", "alice@example.org")
			expectOK(t, c, "bob@example.org", "bob-secret", "bob@example.org") // BLF-CRYPT
			for _, bad := range [][2]string{
				{"alice@example.org", "wrong"},
				{"alice@example.org", "bob-secret"},
				{"nobody@example.org", "alice-secret"},
			} {
				if _, err := c.Authenticate(ctx, req(bad[0], bad[1])); !errors.Is(err, auth.ErrInvalidCredentials) {
					t.Errorf("%s/%s: %v, want ErrInvalidCredentials", bad[0], bad[1], err)
				}
			}
		})
	}

	// Dovecot goes down: a temporary failure, never a wrong password.
	dv.Stop()
	for name, c := range clients {
		_, err := c.Authenticate(ctx, req("alice@example.org", "alice-secret"))
		if !errors.Is(err, auth.ErrUnavailable) || errors.Is(err, auth.ErrInvalidCredentials) {
			t.Errorf("%s with dovecot stopped: %v, want ErrUnavailable", name, err)
		}
	}

	// And back: the same clients reconnect by themselves.
	dv.Start()
	for name, c := range clients {
		t.Run(name+" after restart", func(t *testing.T) {
			expectOK(t, c, "alice@example.org", "alice-secret", "alice@example.org")
		})
	}
}

// TestDovecotRealFailNamesUser: a wrong password comes back with the user
// Dovecot looked up (its user= in FAIL, after auth_username_format = %Lu)
// as auth.Result.Login, the account the caller's login delay counts against
// whichever spelling was guessed on; an unknown login too (its folded
// form), so the auth.Result does not tell the two apart either.
func TestDovecotRealFailNamesUser(t *testing.T) {
	dv := startRealDovecot(t)
	c := New("unix", dv.Socket, Options{Timeout: 5 * time.Second}, nil)
	defer c.Close()
	for i, tc := range []struct{ login, want string }{
		{"Alice@Example.ORG", "alice@example.org"},
		{"ALICE@example.org", "alice@example.org"},
		{"Nobody@Example.ORG", "nobody@example.org"},
	} {
		res, err := c.Authenticate(context.Background(), auth.Request{Login: tc.login, Password: "wrong", Secured: true,
			RemoteIP: netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)})})
		if !errors.Is(err, auth.ErrInvalidCredentials) || res.Login != tc.want {
			t.Errorf("%s with a wrong password: %+v, %v; want ErrInvalidCredentials naming %s", tc.login, res, err, tc.want)
		}
	}
}
