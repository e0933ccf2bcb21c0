package main

import (
	"bufio"
	"crypto/subtle"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// authHTTP is the auth_http service of nginx's mail proxy: it checks
// Auth-User/Auth-Pass against a passwd-file (bcrypt hashes, as Postern and
// Dovecot see them) and sends nginx to the sink.
type authHTTP struct {
	users  map[string][]byte // login -> bcrypt hash
	server string            // Auth-Server (an IP address: nginx does not resolve it)
	port   string            // Auth-Port
	// fast answers from memory (nginx-fastauth): a login whose password
	// was verified once is compared in memory afterwards, never hashed
	// again — what Postern's credential cache does, nginx's best case.
	fast     bool
	mu       sync.Mutex
	verified map[string]string // login -> password verified with bcrypt
}

func loadBcryptUsers(r io.Reader) (map[string][]byte, error) {
	users := map[string][]byte{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		login, rest, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("users file: no colon in %q", line)
		}
		hash, _, _ := strings.Cut(rest, ":")
		hash = strings.TrimPrefix(hash, "{BLF-CRYPT}")
		if !strings.HasPrefix(hash, "$2") {
			return nil, fmt.Errorf("users file: %s: only bcrypt hashes are supported", login)
		}
		users[strings.ToLower(login)] = []byte(hash)
	}
	return users, sc.Err()
}

func newAuthHTTP(usersFile, upstream string) (*authHTTP, error) {
	f, err := os.Open(usersFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	users, err := loadBcryptUsers(f)
	if err != nil {
		return nil, err
	}
	host, port, ok := strings.Cut(upstream, ":")
	if !ok {
		return nil, fmt.Errorf("--upstream %q: want IP:PORT", upstream)
	}
	return &authHTTP{users: users, server: host, port: port}, nil
}

func (a *authHTTP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user := strings.ToLower(r.Header.Get("Auth-User"))
	pass := r.Header.Get("Auth-Pass")
	if !a.check(user, pass) {
		w.Header().Set("Auth-Status", "Invalid login or password")
		w.Header().Set("Auth-Error-Code", "535 5.7.8")
		w.Header().Set("Auth-Wait", "1")
		return
	}
	w.Header().Set("Auth-Status", "OK")
	w.Header().Set("Auth-Server", a.server)
	w.Header().Set("Auth-Port", a.port)
}

// check verifies a password: with bcrypt every time, or with fast, with
// bcrypt the first time and in memory (constant time) after that.
func (a *authHTTP) check(user, pass string) bool {
	if a.fast {
		a.mu.Lock()
		known, ok := a.verified[user]
		a.mu.Unlock()
		if ok && subtle.ConstantTimeCompare([]byte(known), []byte(pass)) == 1 {
			return true
		}
	}
	hash, ok := a.users[user]
	if !ok || bcrypt.CompareHashAndPassword(hash, []byte(pass)) != nil {
		return false
	}
	if a.fast {
		a.mu.Lock()
		if a.verified == nil {
			a.verified = map[string]string{}
		}
		a.verified[user] = pass
		a.mu.Unlock()
	}
	return true
}
