package main

import (
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/certs/certstest"
	"github.com/postern/postern/internal/testkit"
)

// acmeRedisSetup is a Pebble, a Redis and the flags replicas sharing their
// ACME certificates through that Redis have in common.
type acmeRedisSetup struct {
	pebble *certstest.Pebble
	redis  *testkit.RedisServer
	name   string
	flags  []string
	env    []string
}

func newACMERedisSetup(t *testing.T) *acmeRedisSetup {
	t.Helper()
	// An hour's validity: no renewal during the test (certs'
	// TestACMERedisReplicasRenew covers renewal).
	s := &acmeRedisSetup{pebble: certstest.StartPebble(t, time.Hour), redis: testkit.StartRedis(t), name: "mail.postern.test"}
	keyFile := filepath.Join(t.TempDir(), "acme.key")
	writeFile(t, keyFile, "6f1c4b7e0d2a9f8e3b5c7a1d0e9f8c7b6a5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f\n")
	s.flags = []string{
		"--hostname", s.name,
		"--acme-domain", s.name,
		"--acme-email", "postmaster@postern.test",
		"--acme-directory", s.pebble.DirURL,
		"--acme-cache", "redis",
		"--acme-cache-key-file", keyFile,
		"--state", s.redis.URL(),
		"--metrics", anyPort,
	}
	// The binary trusts Pebble's HTTPS endpoint through SSL_CERT_FILE.
	s.env = []string{"SSL_CERT_FILE=" + s.pebble.HTTPSCertFile}
	return s
}

// start launches one replica with its own local copy directory, without
// waiting for it. http01 is its --acme-http address: Pebble validates on
// one fixed port, which only one replica can bind; the others answer
// nothing there, and the challenge token reaches the one that does
// through the shared cache, whichever replica orders.
func (s *acmeRedisSetup) start(t *testing.T, http01, localDir string) *postern {
	t.Helper()
	dir := t.TempDir()
	p := &postern{StartTLS: anyPort, TLS: anyPort, Dir: dir, UsersFile: filepath.Join(dir, "users")}
	writeFile(t, p.UsersFile, usersFileContent(t))
	args := append([]string{"serve",
		"--listen", "starttls=" + p.StartTLS, "--listen", "tls=" + p.TLS,
		"--upstream", testkit.FreeAddr(t), // never used: no mail is sent
		"--users", p.UsersFile,
		"--shutdown-timeout", "5s",
		"--acme-http", http01,
		"--acme-cache-local", localDir,
	}, s.flags...)
	cmd := exec.Command(posternBin, args...)
	cmd.Env = append(cleanEnv(), s.env...)
	p.proc = testkit.StartCmd(t, cmd)
	return p
}

// ready waits until p listens and has its ACME certificate.
func (s *acmeRedisSetup) ready(t *testing.T, p *postern) {
	t.Helper()
	addrs := smtpListenAddrs(t, p.proc, 2)
	p.StartTLS, p.TLS = addrs[0], addrs[1]
	p.waitLog(t, "certs: ACME certificate ready", 120*time.Second)
}

// serial returns the serial of the certificate p serves for the name,
// verified against Pebble's root.
func (s *acmeRedisSetup) serial(t *testing.T, p *postern) string {
	t.Helper()
	conn, err := tls.Dial("tcp", p.TLS, &tls.Config{ServerName: s.name, RootCAs: s.pebble.Roots})
	if err != nil {
		t.Fatalf("TLS to %s verifying %s against Pebble's root: %v", p.TLS, s.name, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// issued counts the certificates Pebble issued so far.
func (s *acmeRedisSetup) issued() int {
	return strings.Count(s.pebble.Log(), "Issued certificate serial")
}

// TestACMERedisCacheReplicasE2E: three `postern serve` started at once
// with --acme-cache redis ask for the same name: Pebble issues exactly one
// certificate, all three serve it (same serial), and no value in Redis is
// a PEM key. Then an attacker swaps two entries in Redis: a fourth replica
// refuses the value, logs it, serves nothing for the name and orders
// nothing. Then, Redis down, a restarted replica serves its local copy and
// says so in its log and its metrics.
func TestACMERedisCacheReplicasE2E(t *testing.T) {
	t.Parallel()
	s := newACMERedisSetup(t)
	var ps [3]*postern
	var locals [3]string
	for i := range ps {
		http01 := "127.0.0.1:0"
		if i == 0 {
			http01 = "127.0.0.1:" + strconv.Itoa(s.pebble.HTTPPort)
		}
		locals[i] = filepath.Join(t.TempDir(), "acme")
		ps[i] = s.start(t, http01, locals[i])
	}
	for _, p := range ps {
		s.ready(t, p)
	}
	if n := s.issued(); n != 1 {
		t.Errorf("Pebble issued %d certificates for one name and three replicas, want 1:\n%s", n, s.pebble.Log())
	}
	first := s.serial(t, ps[0])
	for i, p := range ps[1:] {
		if got := s.serial(t, p); got != first {
			t.Errorf("replica %d serves serial %s, replica 0 serves %s", i+1, got, first)
		}
	}

	keys, _ := s.redis.Do(t, "KEYS", "postern:acme:*").([]any)
	if len(keys) < 2 { // the account key and the certificate at least
		t.Fatalf("ACME keys in Redis: %v", keys)
	}
	for _, k := range keys {
		v, _ := s.redis.Do(t, "GET", k).(string)
		if strings.Contains(v, "PRIVATE KEY") || strings.Contains(v, "-----BEGIN") {
			t.Errorf("Redis key %s holds PEM in clear", k)
		}
		if b, _ := pem.Decode([]byte(v)); b != nil {
			t.Errorf("Redis key %s parses as PEM (%s)", k, b.Type)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	t.Run("swapped entries are refused", func(t *testing.T) {
		certKey, accountKey := "postern:acme:"+s.name, "postern:acme:acme_account+key"
		orig, _ := s.redis.Do(t, "GET", certKey).(string)
		account, _ := s.redis.Do(t, "GET", accountKey).(string)
		s.redis.Do(t, "SET", certKey, account)
		defer s.redis.Do(t, "SET", certKey, orig)
		p := s.start(t, "127.0.0.1:0", filepath.Join(t.TempDir(), "acme"))
		addrs := smtpListenAddrs(t, p.proc, 2)
		p.StartTLS, p.TLS = addrs[0], addrs[1]
		p.waitLog(t, "certs: ACME cache: entry in Redis refused", 60*time.Second)
		p.waitLog(t, "certs: obtaining ACME certificate failed", 60*time.Second)
		if _, err := tls.Dial("tcp", p.TLS, &tls.Config{ServerName: s.name, RootCAs: s.pebble.Roots}); err == nil {
			t.Error("a replica reading a swapped entry served a certificate for the name")
		}
		if strings.Contains(p.Log(), "certs: ACME certificate ready") {
			t.Error("a replica reading a swapped entry logged its certificate ready")
		}
		if n := s.issued(); n != 1 {
			t.Errorf("a swapped entry made a replica order: Pebble issued %d certificates, want still 1", n)
		}
	})

	t.Run("Redis down: the local copy", func(t *testing.T) {
		ps[1].proc.Stop()
		s.redis.Stop(t)
		p := s.start(t, "127.0.0.1:0", locals[1])
		s.ready(t, p)
		if got := s.serial(t, p); got != first {
			t.Errorf("restarted replica with Redis down serves serial %s, want %s from its local copy", got, first)
		}
		if !strings.Contains(p.Log(), "certs: ACME cache: Redis unreachable: serving this replica's local copy") {
			t.Errorf("no log line about the local copy:\n%s", p.Log())
		}
		m, raw := opsScrape(t, "http://"+p.metricsAddr(t)+"/metrics")
		if m["postern_acme_cache_degraded"] != 1 {
			t.Errorf("postern_acme_cache_degraded is not 1 with Redis down:\n%s", raw)
		}
	})
}

// TestACMERedisCacheFlagsE2E: --acme-cache redis is refused without a
// Redis --state or without a valid key file, and the error says what is
// missing.
func TestACMERedisCacheFlagsE2E(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	writeFile(t, users, usersFileContent(t))
	good := filepath.Join(dir, "good.key")
	writeFile(t, good, strings.Repeat("ab", 32)+"\n")
	short := filepath.Join(dir, "short.key")
	writeFile(t, short, strings.Repeat("ab", 31)+"\n")
	base := []string{"check-config", "--upstream", "127.0.0.1:25", "--users", users,
		"--acme-domain", "mail.postern.test", "--acme-cache", "redis", "--acme-cache-local", filepath.Join(dir, "acme")}
	for _, tc := range []struct {
		name  string
		flags []string
		want  string
	}{
		{"no redis state", []string{"--acme-cache-key-file", good}, "needs --state redis://"},
		{"no key file", []string{"--state", "redis://127.0.0.1:1/0"}, "needs --acme-cache-key-file"},
		{"short key", []string{"--state", "redis://127.0.0.1:1/0", "--acme-cache-key-file", short}, "64 hex digits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runPostern(t, append(append([]string{}, base...), tc.flags...)...)
			if code == 0 || !strings.Contains(out+errOut, tc.want) {
				t.Errorf("exit %d, want non-zero and %q in:\n%s%s", code, tc.want, out, errOut)
			}
			if bytes.Contains([]byte(out+errOut), []byte(strings.Repeat("ab", 31))) {
				t.Errorf("the key file's content is in the output")
			}
		})
	}
}
