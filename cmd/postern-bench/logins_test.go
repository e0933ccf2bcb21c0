package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/auth/usersfile"
)

// TestStormUsers: storm-users writes N distinct logins whose passwords
// verify against the users file's bcrypt cost-10 hashes, and --logins reads
// them back in order.
func TestStormUsers(t *testing.T) {
	dir := t.TempDir()
	users, logins := filepath.Join(dir, "users"), filepath.Join(dir, "logins")
	if err := runStormUsersCmd([]string{"--n", "3", "--users", users, "--logins", logins}, io.Discard); err != nil {
		t.Fatal(err)
	}
	creds, err := readLogins(logins)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(users)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(creds) != 3 || len(lines) != 3 {
		t.Fatalf("%d logins and %d users, want 3 of each", len(creds), len(lines))
	}
	seen := map[string]bool{}
	for i, l := range creds {
		user, hash, _ := strings.Cut(lines[i], ":")
		if user != l.user || seen[user] {
			t.Errorf("line %d: users file has %q, logins %q (or a repeat)", i+1, user, l.user)
		}
		seen[user] = true
		if !strings.HasPrefix(hash, "{BLF-CRYPT}$2y$10$") {
			t.Errorf("%s: hash is not bcrypt cost 10", user)
		}
		if ok, err := usersfile.VerifyPassword(hash, l.password); !ok || err != nil {
			t.Errorf("%s: password does not verify: %v", user, err)
		}
	}
	os.WriteFile(logins, []byte("no-colon\n"), 0o600)
	if _, err := readLogins(logins); err == nil {
		t.Error("readLogins accepted a line without ':'")
	}
}
