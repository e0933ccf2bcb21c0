package main

import (
	"context"
	"strings"
	"testing"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/auth/usersfile"
)

// FuzzNewLoginLoads: every login `postern user add` accepts, written as its
// line, loads back as that login (so the check never lets through a login
// the users file would refuse or read as something else: a comment, a
// shorter login), and every line it refuses writes nothing.
func FuzzNewLoginLoads(f *testing.F) {
	for _, s := range []string{"alice@example.org", "a:b", "#x", " x", "x\ty", "Ünïcode@example.org", "x\u2028y", "x\xffy", "", "x\u00a0y", "\ufeffx"} {
		f.Add(s)
	}
	// {PLAIN}: parsing is under test here, not hashing.
	const hash = "{PLAIN}secret"
	f.Fuzz(func(t *testing.T, login string) {
		if checkNewLogin(login) != nil {
			return
		}
		users, err := usersfile.Parse(strings.NewReader("# users\n"+login+":"+hash+"\n"), "users")
		if err != nil {
			t.Fatalf("login %q passed the check but its line does not load: %v", login, err)
		}
		res, err := users.Authenticate(context.Background(), auth.Request{Login: login, Password: "secret"})
		if err != nil || res.Login != login {
			t.Fatalf("login %q loads as %q (%v)", login, res.Login, err)
		}
		if usersLineLogin(login+":"+hash) != login {
			t.Fatalf("usersLineLogin reads %q for %q", usersLineLogin(login+":"+hash), login)
		}
	})
}
