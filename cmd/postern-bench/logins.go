package main

import (
	"bufio"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/postern/postern/auth/usersfile"
)

// readLogins reads a --logins file: one "login:password" per line (the
// bench's own throw-away credentials, in clear because the client needs
// them); blank lines and '#' comments are skipped.
func readLogins(path string) ([]login, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading --logins: %w", err)
	}
	defer f.Close()
	var out []login
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, pw, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("reading --logins: %s:%d: want login:password", path, n)
		}
		out = append(out, login{user, pw})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading --logins: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("reading --logins: %s has no logins", path)
	}
	return out, nil
}

// runStormUsersCmd writes W5's N distinct users: a users file for the
// server (login:{BLF-CRYPT}$2y$10$..., cost 10 like `postern hash-password`)
// and the matching --logins file for the load generator.
func runStormUsersCmd(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("postern-bench storm-users", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 500, "number of users")
	usersPath := fs.String("users", "", "users `FILE` to write (bcrypt hashes)")
	loginsPath := fs.String("logins", "", "logins `FILE` to write (login:password)")
	domain := fs.String("domain", "example.test", "domain of the logins")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 || *usersPath == "" || *loginsPath == "" {
		return errors.New("storm-users needs --n >= 1, --users and --logins")
	}
	logins := make([]string, *n)
	hashes := make([]string, *n)
	errs := make([]error, *n)
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				pw := rand.Text()[:16]
				logins[i] = fmt.Sprintf("storm%04d@%s:%s", i, *domain, pw)
				hashes[i], errs[i] = usersfile.HashPassword(pw, "BLF-CRYPT")
			}
		}()
	}
	for i := 0; i < *n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var users, creds strings.Builder
	for i := range logins {
		user, _, _ := strings.Cut(logins[i], ":")
		fmt.Fprintf(&users, "%s:%s\n", user, hashes[i])
		fmt.Fprintf(&creds, "%s\n", logins[i])
	}
	if err := os.WriteFile(*usersPath, []byte(users.String()), 0o600); err != nil {
		return fmt.Errorf("writing users: %w", err)
	}
	if err := os.WriteFile(*loginsPath, []byte(creds.String()), 0o600); err != nil {
		return fmt.Errorf("writing logins: %w", err)
	}
	return nil
}
