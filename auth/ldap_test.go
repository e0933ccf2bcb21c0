package auth

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/postern/postern/internal/testkit"
)

// slapdConfig is a minimal slapd.conf (OpenLDAP 2.5, Debian's slapd): one
// mdb database in the test's directory, passwords readable by nobody but
// usable for binds, everything else readable anonymously.
const slapdConfig = `# written by postern's auth tests
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/misc.schema
pidfile {{dir}}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 16777216
suffix "dc=example,dc=org"
rootdn "cn=admin,dc=example,dc=org"
rootpw {{rootpw}}
directory {{dir}}/db
access to attrs=userPassword by anonymous auth by self write by * none
access to * by * read
`

const (
	ldapBase   = "dc=example,dc=org"
	ldapRootDN = "cn=admin,dc=example,dc=org"
	ldapRootPW = "root-secret"
)

type realSlapd struct {
	url  string
	proc *testkit.Process
}

func startSlapd(t *testing.T) *realSlapd {
	t.Helper()
	slapd := testkit.RequireTool(t, "slapd")
	slappasswd := testkit.RequireTool(t, "slappasswd")
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer("{{dir}}", dir, "{{rootpw}}", ssha(t, slappasswd, ldapRootPW)).Replace(slapdConfig)
	confPath := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testkit.FreeAddr(t)
	s := &realSlapd{url: "ldap://" + addr}
	// -d 0 keeps slapd in the foreground, so the test holds its PID.
	s.proc = testkit.Start(t, slapd, "-f", confPath, "-h", s.url+"/", "-d", "0")
	testkit.WaitTCP(t, addr, 10*time.Second)
	seedLDAP(t, s.url, slappasswd)
	return s
}

func ssha(t *testing.T, slappasswd, password string) string {
	t.Helper()
	out, err := exec.Command(slappasswd, "-s", password).CombinedOutput()
	if err != nil {
		t.Fatalf("slappasswd: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// seedLDAP adds, as the rootdn: a search account, alice (with an alias
// address in mailLocalAddress), bob, carol without a password, and two
// entries sharing one address.
func seedLDAP(t *testing.T, url, slappasswd string) {
	t.Helper()
	conn, err := ldap.DialURL(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Bind(ldapRootDN, ldapRootPW); err != nil {
		t.Fatalf("binding as rootdn: %v", err)
	}
	add := func(dn string, attrs map[string][]string) {
		req := ldap.NewAddRequest(dn, nil)
		for _, name := range slices.Sorted(func(yield func(string) bool) {
			for k := range attrs {
				if !yield(k) {
					return
				}
			}
		}) {
			req.Attribute(name, attrs[name])
		}
		if err := conn.Add(req); err != nil {
			t.Fatalf("adding %s: %v", dn, err)
		}
	}
	person := func(uid, password string, mails ...string) map[string][]string {
		a := map[string][]string{
			"objectClass": {"inetOrgPerson", "inetLocalMailRecipient"},
			"uid":         {uid}, "cn": {uid}, "sn": {uid},
			"mail": mails[:1],
		}
		if len(mails) > 1 {
			a["mailLocalAddress"] = mails[1:]
		}
		if password != "" {
			a["userPassword"] = []string{ssha(t, slappasswd, password)}
		}
		return a
	}
	add(ldapBase, map[string][]string{"objectClass": {"dcObject", "organization"}, "dc": {"example"}, "o": {"Example"}})
	add("ou=people,"+ldapBase, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"people"}})
	add("cn=postern,"+ldapBase, map[string][]string{
		"objectClass": {"organizationalRole", "simpleSecurityObject"}, "cn": {"postern"},
		"userPassword": {ssha(t, slappasswd, "search-secret")},
	})
	add("uid=alice,ou=people,"+ldapBase, person("alice", "alice-secret", "alice@example.org", "alias@example.org", "a.smith@example.org"))
	add("uid=bob,ou=people,"+ldapBase, person("bob", "bob-secret", "bob@example.org"))
	add("uid=carol,ou=people,"+ldapBase, person("carol", "", "carol@example.org"))
	add("uid=dup1,ou=people,"+ldapBase, person("dup1", "dup-secret", "dup@example.org"))
	add("uid=dup2,ou=people,"+ldapBase, person("dup2", "dup-secret", "dup@example.org"))
}

func TestLDAPReal(t *testing.T) {
	s := startSlapd(t)
	ctx := context.Background()
	configs := map[string]LDAPConfig{
		"anonymous search": {URL: s.url, BaseDN: ldapBase, AliasAttribute: "mailLocalAddress", Timeout: 5 * time.Second},
		"bound search": {URL: s.url, BaseDN: "ou=people," + ldapBase, AliasAttribute: "mailLocalAddress",
			BindDN: "cn=postern," + ldapBase, BindPassword: "search-secret"},
	}
	for name, cfg := range configs {
		t.Run(name, func(t *testing.T) {
			l, err := NewLDAP(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := l.Authenticate(ctx, Request{Login: "alice@example.org", Password: "alice-secret"})
			if err != nil {
				t.Fatalf("right password: %v", err)
			}
			want := Result{Login: "alice@example.org", Addresses: []string{"alice@example.org", "alias@example.org", "a.smith@example.org"}}
			if res.Login != want.Login || !slices.Equal(res.Addresses, want.Addresses) {
				t.Errorf("got %+v, want %+v", res, want)
			}
			for _, bad := range []struct{ login, password, why string }{
				{"alice@example.org", "wrong", "wrong password"},
				{"alice@example.org", "bob-secret", "another user's password"},
				{"nobody@example.org", "alice-secret", "unknown user"},
				{"dup@example.org", "dup-secret", "two entries match"},
				{"carol@example.org", "anything", "entry without userPassword"},
				{"alice@example.org", "", "empty password (would be an unauthenticated bind)"},
				{"*", "alice-secret", "wildcard login (filter injection)"},
				{"alice@example.org)(mail=*", "alice-secret", "filter injection"},
				{"alias@example.org", "alice-secret", "alias is not the login with (mail=%u)"},
			} {
				_, err := l.Authenticate(ctx, Request{Login: bad.login, Password: bad.password})
				if !errors.Is(err, ErrInvalidCredentials) {
					t.Errorf("%s (%q): %v, want ErrInvalidCredentials", bad.why, bad.login, err)
				}
			}
		})
	}

	t.Run("uid login with LoginAttribute", func(t *testing.T) {
		l, err := NewLDAP(LDAPConfig{URL: s.url, BaseDN: ldapBase, Filter: "(|(uid=%u)(mail=%u))", LoginAttribute: "uid"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, login := range []string{"alice", "ALICE", "alice@example.org"} {
			res, err := l.Authenticate(ctx, Request{Login: login, Password: "alice-secret"})
			if err != nil || res.Login != "alice" || len(res.Addresses) != 1 {
				t.Errorf("%s: got %+v, %v; want login alice with only the mail address (no alias attribute set)", login, res, err)
			}
		}
	})

	t.Run("wrong search credentials are a backend problem", func(t *testing.T) {
		l, err := NewLDAP(LDAPConfig{URL: s.url, BaseDN: ldapBase, BindDN: "cn=postern," + ldapBase, BindPassword: "stale"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = l.Authenticate(ctx, Request{Login: "alice@example.org", Password: "alice-secret"})
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("got %v, want ErrUnavailable", err)
		}
	})

	// Timing: an unknown user and a wrong password both cost a search and a
	// bind. Logged, not asserted (benchmarks are not tests).
	l, _ := NewLDAP(configs["anonymous search"], nil)
	median := func(login string) time.Duration {
		var ds []time.Duration
		for range 21 {
			start := time.Now()
			_, _ = l.Authenticate(ctx, Request{Login: login, Password: "nope"})
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	t.Logf("median over 21: unknown user %v, wrong password %v", median("nobody@example.org"), median("alice@example.org"))

	// slapd goes down: unavailable, never a wrong password.
	s.proc.Stop()
	for name, cfg := range configs {
		l, _ := NewLDAP(cfg, nil)
		_, err := l.Authenticate(ctx, Request{Login: "alice@example.org", Password: "alice-secret"})
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("%s with slapd stopped: %v, want ErrUnavailable", name, err)
		}
	}
}

func TestLDAPEmptyPasswordNeverContactsServer(t *testing.T) {
	// Port 1 on loopback: nothing listens, any attempt would be unavailable.
	l, err := NewLDAP(LDAPConfig{URL: "ldap://127.0.0.1:1", BaseDN: ldapBase}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Authenticate(context.Background(), Request{Login: "alice@example.org", Password: ""})
	if !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("got %v, want ErrInvalidCredentials without a connection attempt", err)
	}
	_, err = l.Authenticate(context.Background(), Request{Login: "alice@example.org", Password: "x"})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("server down: got %v, want ErrUnavailable", err)
	}
}

func TestLDAPTimeout(t *testing.T) {
	// A server that accepts and never answers: the request must give up.
	ln := listenSilent(t)
	l, err := NewLDAP(LDAPConfig{URL: "ldap://" + ln, BaseDN: ldapBase, Timeout: 300 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = l.Authenticate(context.Background(), Request{Login: "a@example.org", Password: "x"})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("took %v with a 300ms timeout", el)
	}
}

func TestNewLDAPRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  LDAPConfig
	}{
		{"no url", LDAPConfig{BaseDN: ldapBase}},
		{"http url", LDAPConfig{URL: "http://x", BaseDN: ldapBase}},
		{"no base", LDAPConfig{URL: "ldap://x"}},
		{"bad base", LDAPConfig{URL: "ldap://x", BaseDN: "not a dn"}},
		{"starttls on ldaps", LDAPConfig{URL: "ldaps://x", BaseDN: ldapBase, StartTLS: true}},
		{"filter without %u", LDAPConfig{URL: "ldap://x", BaseDN: ldapBase, Filter: "(mail=*)"}},
		{"broken filter", LDAPConfig{URL: "ldap://x", BaseDN: ldapBase, Filter: "(mail=%u"}},
		{"bind dn without password", LDAPConfig{URL: "ldap://x", BaseDN: ldapBase, BindDN: "cn=a," + ldapBase}},
	} {
		if _, err := NewLDAP(tc.cfg, nil); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	l, err := NewLDAP(LDAPConfig{URL: "ldaps://ldap.example.org", BaseDN: ldapBase}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.cfg.Filter != "(mail=%u)" || l.cfg.TLS.ServerName != "ldap.example.org" {
		t.Errorf("defaults: filter %q, TLS server name %q", l.cfg.Filter, l.cfg.TLS.ServerName)
	}
	if got := userFilter("(mail=%u)", "a*)(b\\"); got != `(mail=a\2a\29\28b\5c)` {
		t.Errorf("escaped filter = %s", got)
	}
}

// listenSilent accepts TCP connections on loopback and never answers.
func listenSilent(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	return ln.Addr().String()
}
