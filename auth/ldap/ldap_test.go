package ldap

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/auth/authtest"

	"github.com/postern/postern/auth"
)

const ldapBase = authtest.LDAPBase

// startSlapd starts slapd with authtest's skeleton (the search account
// cn=postern with password search-secret) and adds: alice (with two alias
// addresses in mailLocalAddress), bob, carol without a password, and two
// entries sharing one address.
func startSlapd(t *testing.T) *authtest.Slapd {
	t.Helper()
	s := authtest.StartSlapd(t)
	s.AddUser("alice", "alice-secret", "alice@example.org", "alias@example.org", "a.smith@example.org")
	s.AddUser("bob", "bob-secret", "bob@example.org")
	s.AddUser("carol", "", "carol@example.org")
	s.AddUser("dup1", "dup-secret", "dup@example.org")
	s.AddUser("dup2", "dup-secret", "dup@example.org")
	return s
}

func TestLDAPReal(t *testing.T) {
	s := startSlapd(t)
	ctx := context.Background()
	configs := map[string]Config{
		"anonymous search": {URL: s.URL, BaseDN: ldapBase, AliasAttribute: "mailLocalAddress", Timeout: 5 * time.Second},
		"bound search": {URL: s.URL, BaseDN: authtest.LDAPPeople, AliasAttribute: "mailLocalAddress",
			BindDN: authtest.LDAPSearchDN, BindPassword: authtest.LDAPSearchPW},
	}
	for name, cfg := range configs {
		t.Run(name, func(t *testing.T) {
			l, err := New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := l.Authenticate(ctx, auth.Request{Login: "alice@example.org", Password: "alice-secret"})
			if err != nil {
				t.Fatalf("right password: %v", err)
			}
			want := auth.Result{Login: "alice@example.org", Addresses: []string{"alice@example.org", "alias@example.org", "a.smith@example.org"}}
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
				_, err := l.Authenticate(ctx, auth.Request{Login: bad.login, Password: bad.password})
				if !errors.Is(err, auth.ErrInvalidCredentials) {
					t.Errorf("%s (%q): %v, want ErrInvalidCredentials", bad.why, bad.login, err)
				}
			}
		})
	}

	t.Run("uid login with LoginAttribute", func(t *testing.T) {
		l, err := New(Config{URL: s.URL, BaseDN: ldapBase, Filter: "(|(uid=%u)(mail=%u))", LoginAttribute: "uid"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, login := range []string{"alice", "ALICE", "alice@example.org"} {
			res, err := l.Authenticate(ctx, auth.Request{Login: login, Password: "alice-secret"})
			if err != nil || res.Login != "alice" || len(res.Addresses) != 1 {
				t.Errorf("%s: got %+v, %v; want login alice with only the mail address (no alias attribute set)", login, res, err)
			}
		}
	})

	t.Run("wrong search credentials are a backend problem", func(t *testing.T) {
		l, err := New(Config{URL: s.URL, BaseDN: ldapBase, BindDN: authtest.LDAPSearchDN, BindPassword: "stale"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = l.Authenticate(ctx, auth.Request{Login: "alice@example.org", Password: "alice-secret"})
		if !errors.Is(err, auth.ErrUnavailable) || errors.Is(err, auth.ErrInvalidCredentials) {
			t.Errorf("got %v, want ErrUnavailable", err)
		}
	})

	// Timing: an unknown user and a wrong password both cost a search and a
	// bind. Logged, not asserted (benchmarks are not tests).
	l, _ := New(configs["anonymous search"], nil)
	median := func(login string) time.Duration {
		var ds []time.Duration
		for range 21 {
			start := time.Now()
			_, _ = l.Authenticate(ctx, auth.Request{Login: login, Password: "nope"})
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	t.Logf("median over 21: unknown user %v, wrong password %v", median("nobody@example.org"), median("alice@example.org"))

	// slapd goes down: unavailable, never a wrong password.
	s.Stop()
	for name, cfg := range configs {
		l, _ := New(cfg, nil)
		_, err := l.Authenticate(ctx, auth.Request{Login: "alice@example.org", Password: "alice-secret"})
		if !errors.Is(err, auth.ErrUnavailable) || errors.Is(err, auth.ErrInvalidCredentials) {
			t.Errorf("%s with slapd stopped: %v, want ErrUnavailable", name, err)
		}
	}
}

func TestLDAPEmptyPasswordNeverContactsServer(t *testing.T) {
	// Port 1 on loopback: nothing listens, any attempt would be unavailable.
	l, err := New(Config{URL: "ldap://127.0.0.1:1", BaseDN: ldapBase}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Authenticate(context.Background(), auth.Request{Login: "alice@example.org", Password: ""})
	if !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("got %v, want ErrInvalidCredentials without a connection attempt", err)
	}
	_, err = l.Authenticate(context.Background(), auth.Request{Login: "alice@example.org", Password: "x"})
	if !errors.Is(err, auth.ErrUnavailable) {
		t.Fatalf("server down: got %v, want ErrUnavailable", err)
	}
}

func TestLDAPTimeout(t *testing.T) {
	// A server that accepts and never answers: the request must give up.
	ln := listenSilent(t)
	l, err := New(Config{URL: "ldap://" + ln, BaseDN: ldapBase, Timeout: 300 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = l.Authenticate(context.Background(), auth.Request{Login: "a@example.org", Password: "x"})
	if !errors.Is(err, auth.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("took %v with a 300ms timeout", el)
	}
}

func TestNewLDAPRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no url", Config{BaseDN: ldapBase}},
		{"http url", Config{URL: "http://x", BaseDN: ldapBase}},
		{"no base", Config{URL: "ldap://x"}},
		{"bad base", Config{URL: "ldap://x", BaseDN: "not a dn"}},
		{"starttls on ldaps", Config{URL: "ldaps://x", BaseDN: ldapBase, StartTLS: true}},
		{"filter without %u", Config{URL: "ldap://x", BaseDN: ldapBase, Filter: "(mail=*)"}},
		{"broken filter", Config{URL: "ldap://x", BaseDN: ldapBase, Filter: "(mail=%u"}},
		{"bind dn without password", Config{URL: "ldap://x", BaseDN: ldapBase, BindDN: "cn=a," + ldapBase}},
	} {
		if _, err := New(tc.cfg, nil); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	l, err := New(Config{URL: "ldaps://ldap.example.org", BaseDN: ldapBase}, nil)
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

// TestLDAPCanonicalIdentity: with the README's filter every spelling of one
// entry (uid, either mail value, any case) gives the same auth.Result.Login, the
// first value of the login attribute (default mail; the DN for an entry
// without one); Names are the entry's values of the filter's attributes,
// never the typed spelling; a wrong password names the account, an unknown
// login names nobody.
func TestLDAPCanonicalIdentity(t *testing.T) {
	s := authtest.StartSlapd(t)
	mallory := "uid=mallory," + authtest.LDAPPeople
	s.Add(mallory, map[string][]string{
		"objectClass": {"inetOrgPerson"}, "uid": {"mallory"}, "cn": {"mallory"}, "sn": {"mallory"},
		"mail": {"mallory@example.com", "m.allory@example.com"}, "userPassword": {s.SSHA("mallory-secret")},
	})
	nomail := s.AddUser("nomail", "nomail-secret")
	ctx := context.Background()
	l, err := New(Config{URL: s.URL, BaseDN: ldapBase, Filter: "(&(objectClass=inetOrgPerson)(|(uid=%u)(mail=%u)))"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantNames := []string{"mallory", "m.allory@example.com"}
	for _, login := range []string{"mallory", "MALLORY", "mallory@example.com", "m.allory@example.com", "M.Allory@Example.COM"} {
		res, err := l.Authenticate(ctx, auth.Request{Login: login, Password: "mallory-secret"})
		if err != nil || res.Login != "mallory@example.com" || !slices.Equal(res.Names, wantNames) {
			t.Errorf("%s: got %+v, %v; want login mallory@example.com, names %q", login, res, err, wantNames)
		}
		res, err = l.Authenticate(ctx, auth.Request{Login: login, Password: "wrong"})
		if !errors.Is(err, auth.ErrInvalidCredentials) || res.Login != "mallory@example.com" || res.Names != nil || res.Addresses != nil {
			t.Errorf("%s, wrong password: got %+v, %v; want ErrInvalidCredentials naming only mallory@example.com", login, res, err)
		}
	}
	if res, err := l.Authenticate(ctx, auth.Request{Login: "nobody", Password: "wrong"}); !errors.Is(err, auth.ErrInvalidCredentials) || res.Login != "" {
		t.Errorf("unknown login: got %+v, %v; want ErrInvalidCredentials naming nobody", res, err)
	}
	if res, err := l.Authenticate(ctx, auth.Request{Login: "NoMail", Password: "nomail-secret"}); err != nil || res.Login != nomail || !slices.Equal(res.Names, []string{"nomail"}) {
		t.Errorf("entry without mail: got %+v, %v; want its DN %s", res, err, nomail)
	}

	byUID, err := New(Config{URL: s.URL, BaseDN: ldapBase, Filter: "(|(uid=%u)(mail=%u))", LoginAttribute: "uid"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := byUID.Authenticate(ctx, auth.Request{Login: "m.allory@example.com", Password: "mallory-secret"})
	if err != nil || res.Login != "mallory" || !slices.Equal(res.Names, []string{"mallory@example.com", "m.allory@example.com"}) {
		t.Errorf("LoginAttribute uid: got %+v, %v; want login mallory", res, err)
	}
}

func TestFilterLoginAttributes(t *testing.T) {
	for filter, want := range map[string][]string{
		"(mail=%u)":            {"mail"},
		"(|(uid=%u)(mail=%u))": {"uid", "mail"},
		"(&(objectClass=inetOrgPerson)(|(uid=%u)(MAIL=%u)(mail=%u)))": {"uid", "MAIL"},
		"(uid~=%u)":                {"uid"},
		"(mail=%u@example.org)":    nil, // a part of the value: not a spelling
		"(!(uid=%u))":              nil,
		"(uid:caseExactMatch:=%u)": nil,
		"(&(uid=%u)(mail=*))":      {"uid"},
	} {
		got, err := filterLoginAttributes(filter)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: got %q, %v; want %q", filter, got, err, want)
		}
	}
}

// FuzzFilterLoginAttributes: any filter text either fails to compile or
// gives attributes that each appear, as "attr=%u" or "attr~=%u", in it.
func FuzzFilterLoginAttributes(f *testing.F) {
	for _, s := range []string{"(mail=%u)", "(|(uid=%u)(mail=%u))", "(&(objectClass=*)(!(uid=%u))(cn~=%u))", "(mail=%u@x)", "(uid:dn:=%u)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, filter string) {
		attrs, err := filterLoginAttributes(filter)
		if err != nil {
			return
		}
		for _, a := range attrs {
			if !strings.Contains(filter, a+"=%u") && !strings.Contains(filter, a+"~=%u") {
				t.Fatalf("%q: attribute %q is not compared with %%u in the filter", filter, a)
			}
		}
	})
}
