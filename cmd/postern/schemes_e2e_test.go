package main

// End-to-end test of the users file in every password scheme the real tools
// write: a file mixing `doveadm pw` (Dovecot's schemes, weak and strong),
// `htpasswd` (-B, -m, -s, -d) and an entry in a scheme Postern skips (OTP),
// served by the built binary, with swaks logging in as every entry.

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/postern/postern/internal/testkit"
	"github.com/postern/postern/proxy/proxytest"
)

func TestUsersFileSchemesE2E(t *testing.T) {
	t.Parallel()
	doveadm := testkit.RequireTool(t, "doveadm")
	htpasswd := testkit.RequireTool(t, "htpasswd")
	type entry struct {
		login, password, scheme string // scheme: the label of the weak warning, "" if strong
		argv                    []string
	}
	var entries []entry
	add := func(name, scheme string, argv ...string) {
		login := fmt.Sprintf("%s@example.test", strings.ToLower(strings.NewReplacer(" ", "-", ".", "-").Replace(name)))
		// Distinct in the first 8 characters, which is all DES-crypt reads.
		// No ":" in the passwords: a passwd-file line cannot hold one in
		// a clear-text {PLAIN} hash (Dovecot has the same limit).
		password := fmt.Sprintf("p%02dw-x %s", len(entries), name)
		entries = append(entries, entry{login, password, scheme, argv})
	}
	for _, s := range []struct{ scheme, label string }{
		{"BLF-CRYPT", ""}, {"SHA512-CRYPT", ""}, {"SHA256-CRYPT", ""}, {"ARGON2ID", ""}, {"ARGON2I", ""},
		{"PBKDF2", ""}, {"SCRAM-SHA-1", ""}, {"SCRAM-SHA-256", ""}, {"CRYPT", ""},
		{"PLAIN", "PLAIN"}, {"CLEAR", "CLEAR"}, {"PLAIN.b64", "PLAIN"}, {"MD5-CRYPT", "MD5-CRYPT"}, {"MD5", "MD5-CRYPT"},
		{"DES-CRYPT", "DES-CRYPT"}, {"SHA", "SHA"}, {"SHA1", "SHA1"}, {"SHA256", "SHA256"}, {"SHA512.HEX", "SHA512"},
		{"SSHA", "SSHA"}, {"SSHA256", "SSHA256"}, {"SSHA512", "SSHA512"}, {"SMD5", "SMD5"},
		{"PLAIN-MD4", "PLAIN-MD4"}, {"PLAIN-MD5", "PLAIN-MD5"}, {"LDAP-MD5", "LDAP-MD5"},
		{"CRAM-MD5", "CRAM-MD5"}, {"HMAC-MD5", "HMAC-MD5"}, {"DIGEST-MD5", "DIGEST-MD5"},
	} {
		add("doveadm "+s.scheme, s.label, doveadm, "pw", "-s", s.scheme)
	}
	for _, h := range []struct{ flag, label string }{{"-B", ""}, {"-m", "APR1-MD5"}, {"-s", "SHA"}, {"-d", "DES-CRYPT"}} {
		add("htpasswd "+h.flag, h.label, htpasswd, "-nb"+h.flag[1:])
	}
	var file strings.Builder
	file.WriteString("# written by doveadm pw and htpasswd, unchanged\n")
	for _, e := range entries {
		argv := append([]string{}, e.argv...)
		if argv[0] == doveadm {
			argv = append(argv, "-u", e.login, "-p", e.password)
		} else {
			argv = append(argv, e.login, e.password)
		}
		out, err := exec.Command(argv[0], argv[1:]...).Output()
		if err != nil {
			t.Fatalf("%s: %v", strings.Join(argv[:len(argv)-1], " "), err)
		}
		line := strings.TrimSpace(string(out))
		if argv[0] == doveadm {
			line = e.login + ":" + line + "::::::"
		}
		file.WriteString(line + "\n") // htpasswd prints login:hash itself
	}
	out, err := exec.Command(doveadm, "pw", "-s", "OTP", "-p", "otp-password").Output()
	if err != nil {
		t.Fatalf("doveadm pw -s OTP: %v", err)
	}
	file.WriteString("otp@example.test:" + strings.TrimSpace(string(out)) + "\n")

	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	p := startPosternUsers(t, pf.Addr, file.String(), "--metrics", anyPort, "--auth-max-failures", "1000")
	metricsAddr := p.metricsAddr(t)

	for _, e := range entries {
		t.Run(e.login, func(t *testing.T) {
			tr, _ := swaks(t, p.swaksAuth(e.login, e.password, "--quit-after", "AUTH")...)
			if !strings.Contains(tr, "<~  235 ") {
				t.Errorf("right password: no 235:\n%s", tr)
			}
			tr, _ = swaks(t, p.swaksAuth(e.login, "X"+e.password, "--quit-after", "AUTH")...)
			if !strings.Contains(tr, "<~* 535 ") {
				t.Errorf("wrong password: no 535:\n%s", tr)
			}
		})
	}
	t.Run("skipped OTP entry", func(t *testing.T) {
		tr, _ := swaks(t, p.swaksAuth("otp@example.test", "otp-password", "--quit-after", "AUTH")...)
		if !strings.Contains(tr, "<~* 535 ") {
			t.Errorf("OTP login: no 535:\n%s", tr)
		}
	})

	log := p.Log()
	weak := map[string]float64{}
	for _, e := range entries {
		n := strings.Count(log, "login="+e.login+" scheme=")
		switch {
		case e.scheme == "" && n != 0:
			t.Errorf("%s (strong) has %d weak warnings", e.login, n)
		case e.scheme != "":
			weak[e.scheme]++
			if want := "login=" + e.login + " scheme=" + e.scheme; strings.Count(log, want) != 1 || n != 1 {
				t.Errorf("want exactly one weak warning %q, have %d warnings for the login", want, n)
			}
		}
	}
	if c := strings.Count(log, "weak password hash"); c != int(len(entries))-9-1 {
		t.Errorf("%d weak warnings in the log, want %d", c, len(entries)-9-1)
	}
	if !strings.Contains(log, "users file entry skipped") || !strings.Contains(log, "login=otp@example.test") || !strings.Contains(log, "{OTP}") {
		t.Errorf("no skip warning for the OTP entry in the log:\n%s", log)
	}
	for _, e := range entries {
		if strings.Contains(log, e.password) {
			t.Errorf("the log contains %s's password", e.login)
		}
	}
	series, text := opsScrape(t, "http://"+metricsAddr+"/metrics")
	for scheme, n := range weak {
		if got := series[`postern_users_weak_hashes{scheme="`+scheme+`"}`]; got != n {
			t.Errorf("postern_users_weak_hashes{scheme=%q} = %v, want %v", scheme, got, n)
		}
	}
	if got := series["postern_users_skipped_entries"]; got != 1 {
		t.Errorf("postern_users_skipped_entries = %v, want 1\n%s", got, text)
	}
}
