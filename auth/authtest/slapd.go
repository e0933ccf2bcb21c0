package authtest

import (
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

// The directory every Slapd serves: a suffix, its rootdn, an organizational
// unit for people and a service account for searches.
const (
	LDAPBase     = "dc=example,dc=org"
	LDAPRootDN   = "cn=admin," + LDAPBase
	LDAPRootPW   = "root-secret"
	LDAPPeople   = "ou=people," + LDAPBase
	LDAPSearchDN = "cn=postern," + LDAPBase
	LDAPSearchPW = "search-secret"
)

// slapdConfig is a minimal slapd.conf (OpenLDAP 2.5, Debian's slapd): one
// mdb database in the test's directory, passwords readable by nobody but
// usable for binds, everything else readable anonymously. misc.schema brings
// inetLocalMailRecipient with mailLocalAddress (the alias attribute).
const slapdConfig = `# written by postern's authtest
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/misc.schema
pidfile {{dir}}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 16777216
suffix "` + LDAPBase + `"
rootdn "` + LDAPRootDN + `"
rootpw {{rootpw}}
directory {{dir}}/db
access to attrs=userPassword by anonymous auth by self write by * none
access to * by * read
`

// Slapd is an OpenLDAP slapd in the foreground (-d 0) with its own
// configuration and database.
type Slapd struct {
	// URL is ldap://127.0.0.1:PORT; it stays the same across Stop and Start.
	URL string
	// Addr is 127.0.0.1:PORT.
	Addr string

	t          testing.TB
	slapd      string
	slappasswd string
	conf       string

	mu   sync.Mutex
	proc *testkit.Process
}

// StartSlapd starts slapd and seeds the skeleton: the suffix entry,
// ou=people and the search account LDAPSearchDN (password LDAPSearchPW).
// Add users with AddUser or any entry with Add.
func StartSlapd(t testing.TB) *Slapd {
	t.Helper()
	s := &Slapd{t: t, slapd: testkit.RequireTool(t, "slapd"), slappasswd: testkit.RequireTool(t, "slappasswd")}
	// slapd.conf includes these schemas; slapd without them exits at once
	// with a line about an unknown file.
	for _, f := range []string{"core", "cosine", "inetorgperson", "misc"} {
		testkit.RequireFile(t, "/etc/ldap/schema/"+f+".schema", "slapd's "+f+" schema (package slapd)")
	}
	testkit.RequireFile(t, "/usr/lib/ldap/back_mdb.so*", "slapd's mdb backend module (package slapd)")
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer("{{dir}}", dir, "{{rootpw}}", s.SSHA(LDAPRootPW)).Replace(slapdConfig)
	s.conf = filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Addr = testkit.FreeAddr(t)
	s.URL = "ldap://" + s.Addr
	s.Start()
	s.Add(LDAPBase, map[string][]string{"objectClass": {"dcObject", "organization"}, "dc": {"example"}, "o": {"Example"}})
	s.Add(LDAPPeople, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"people"}})
	s.Add(LDAPSearchDN, map[string][]string{
		"objectClass": {"organizationalRole", "simpleSecurityObject"}, "cn": {"postern"},
		"userPassword": {s.SSHA(LDAPSearchPW)},
	})
	return s
}

// Start runs slapd and waits until it accepts connections. The database
// survives Stop and Start.
func (s *Slapd) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.t.Fatal("authtest: slapd already running")
	}
	// -d 0 keeps slapd in the foreground, so the test holds its PID.
	s.proc = testkit.Start(s.t, s.slapd, "-f", s.conf, "-h", s.URL+"/", "-d", "0")
	testkit.WaitTCP(s.t, s.Addr, 10*time.Second)
}

// Stop terminates slapd by PID and waits for it to exit.
func (s *Slapd) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.Stop()
		s.proc = nil
	}
}

// SSHA returns the {SSHA} hash of password, as slappasswd writes it.
func (s *Slapd) SSHA(password string) string {
	s.t.Helper()
	out, err := exec.Command(s.slappasswd, "-s", password).CombinedOutput()
	if err != nil {
		s.t.Fatalf("slappasswd: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// Add adds one entry as the rootdn.
func (s *Slapd) Add(dn string, attrs map[string][]string) {
	s.t.Helper()
	conn, err := ldap.DialURL(s.URL)
	if err != nil {
		s.t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Bind(LDAPRootDN, LDAPRootPW); err != nil {
		s.t.Fatalf("binding as rootdn: %v", err)
	}
	req := ldap.NewAddRequest(dn, nil)
	names := make([]string, 0, len(attrs))
	for k := range attrs {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, name := range names {
		req.Attribute(name, attrs[name])
	}
	if err := conn.Add(req); err != nil {
		s.t.Fatalf("adding %s: %v", dn, err)
	}
}

// AddUser adds uid=UID,ou=people (inetOrgPerson and inetLocalMailRecipient)
// with mail = mails[0] and mailLocalAddress = mails[1:] (the alias
// addresses), and returns its DN. An empty password leaves the entry without
// userPassword, so nobody can bind as it.
func (s *Slapd) AddUser(uid, password string, mails ...string) string {
	s.t.Helper()
	attrs := map[string][]string{
		"objectClass": {"inetOrgPerson", "inetLocalMailRecipient"},
		"uid":         {uid}, "cn": {uid}, "sn": {uid},
	}
	if len(mails) > 0 {
		attrs["mail"] = mails[:1]
	}
	if len(mails) > 1 {
		attrs["mailLocalAddress"] = mails[1:]
	}
	if password != "" {
		attrs["userPassword"] = []string{s.SSHA(password)}
	}
	dn := "uid=" + ldap.EscapeDN(uid) + "," + LDAPPeople
	s.Add(dn, attrs)
	return dn
}
