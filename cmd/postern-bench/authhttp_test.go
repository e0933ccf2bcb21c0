package main

import (
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestAuthHTTPFast: the fast helper verifies a password with bcrypt once,
// then from memory, and never lets a wrong password through either way.
func TestAuthHTTPFast(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, fast := range []bool{false, true} {
		a := &authHTTP{users: map[string][]byte{"u@x.test": hash}, fast: fast}
		for i, c := range []struct {
			user, pass string
			ok         bool
		}{
			{"u@x.test", "wrong", false},
			{"u@x.test", "right", true},
			{"u@x.test", "right", true},
			{"u@x.test", "wrong", false},
			{"u@x.test", "righ", false},
			{"other@x.test", "right", false},
		} {
			if got := a.check(c.user, c.pass); got != c.ok {
				t.Errorf("fast %v, step %d (%s/%s): %v, want %v", fast, i, c.user, c.pass, got, c.ok)
			}
		}
		if fast && len(a.verified) != 1 {
			t.Errorf("fast: %d logins remembered, want 1", len(a.verified))
		}
	}
}
