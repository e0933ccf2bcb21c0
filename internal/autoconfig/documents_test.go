package autoconfig

import (
	"encoding/xml"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/postern/postern/certs/certstest"
	"github.com/postern/postern/internal/testkit"
)

// Thunderbird's config-v1.1 as its documentation names it (written here,
// not shared with the code, so a renamed element fails the test).
type tbDoc struct {
	XMLName  xml.Name `xml:"clientConfig"`
	Version  string   `xml:"version,attr"`
	Provider struct {
		ID       string  `xml:"id,attr"`
		Domain   string  `xml:"domain"`
		Incoming []tbSrv `xml:"incomingServer"`
		Outgoing []tbSrv `xml:"outgoingServer"`
	} `xml:"emailProvider"`
}

type tbSrv struct {
	Type           string `xml:"type,attr"`
	Hostname       string `xml:"hostname"`
	Port           int    `xml:"port"`
	SocketType     string `xml:"socketType"`
	Authentication string `xml:"authentication"`
	Username       string `xml:"username"`
}

// tbElements are the element names config-v1.1 defines that Postern may use.
var tbElements = map[string]bool{"clientConfig": true, "emailProvider": true, "domain": true,
	"displayName": true, "displayShortName": true, "incomingServer": true, "outgoingServer": true,
	"hostname": true, "port": true, "socketType": true, "authentication": true, "username": true}

// elementNames lists every element of an XML document.
func elementNames(t *testing.T, doc []byte) []xml.Name {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(string(doc)))
	var names []xml.Name
	for {
		tok, err := d.Token()
		if err != nil {
			if err.Error() == "EOF" {
				return names
			}
			t.Fatalf("the document is not well-formed XML: %v\n%s", err, doc)
		}
		if se, ok := tok.(xml.StartElement); ok {
			names = append(names, se.Name)
		}
	}
}

func TestThunderbirdDocument(t *testing.T) {
	site := startSite(t, testConfig())
	want := []tbSrv{
		{"smtp", testHostname, 465, "SSL", "password-cleartext", ""},
		{"smtp", testHostname, 587, "STARTTLS", "password-cleartext", ""},
		{"smtp", testHostname, 2525, "STARTTLS", "password-cleartext", ""},
	}
	wantIMAP := tbSrv{"imap", "imap.example.org", 993, "SSL", "password-cleartext", ""}
	// o'neil&co exercises escaping: ' and & are atext.
	for _, tc := range []struct{ url, user string }{
		{"https://autoconfig.example.org/mail/config-v1.1.xml", "%EMAILADDRESS%"},
		{"https://example.org/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice%40example.org", "alice@example.org"},
		{"https://autoconfig.example.org/mail/config-v1.1.xml?emailaddress=" + url.QueryEscape("o'neil&co@EXAMPLE.org"), "o'neil&co@example.org"},
	} {
		code, body, h := site.do(t, http.MethodGet, tc.url, "")
		if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "application/xml") {
			t.Fatalf("%s: %d %s", tc.url, code, h.Get("Content-Type"))
		}
		for _, n := range elementNames(t, body) {
			if !tbElements[n.Local] || n.Space != "" {
				t.Errorf("%s: element %v is not in config-v1.1", tc.url, n)
			}
		}
		var doc tbDoc
		if err := xml.Unmarshal(body, &doc); err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		if doc.Version != "1.1" || doc.Provider.Domain != testDomain || doc.Provider.ID != testDomain {
			t.Errorf("%s: version %q domain %q id %q", tc.url, doc.Version, doc.Provider.Domain, doc.Provider.ID)
		}
		for i := range want {
			want[i].Username = tc.user
		}
		wantIMAP.Username = tc.user
		if !reflect.DeepEqual(doc.Provider.Outgoing, want) {
			t.Errorf("%s: outgoing servers\n got %+v\nwant %+v", tc.url, doc.Provider.Outgoing, want)
		}
		if len(doc.Provider.Incoming) != 1 || doc.Provider.Incoming[0] != wantIMAP {
			t.Errorf("%s: incoming %+v, want %+v", tc.url, doc.Provider.Incoming, wantIMAP)
		}
	}
}

// Outlook's POX autodiscover response as MS-OXDSCLI names it.
type adDoc struct {
	XMLName  xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Autodiscover"`
	Response struct {
		XMLName xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a Response"`
		User    struct {
			AutoDiscoverSMTPAddress string `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a AutoDiscoverSMTPAddress"`
		} `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a User"`
		Account struct {
			AccountType string       `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a AccountType"`
			Action      string       `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a Action"`
			Protocol    []adProtoDoc `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a Protocol"`
		} `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a Account"`
	}
}

type adProtoDoc struct {
	Type, Server                        string
	Port                                int
	LoginName, DomainRequired, SPA, SSL string
	Encryption, AuthRequired            string
}

const outlookRequest = `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>%s</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>`

func TestAutodiscoverDocument(t *testing.T) {
	site := startSite(t, testConfig())
	for _, addr := range []string{"bob@example.org", "o&#39;neil&amp;co@example.org"} {
		code, body, _ := site.do(t, http.MethodPost, "https://autodiscover.example.org/Autodiscover/Autodiscover.xml",
			strings.Replace(outlookRequest, "%s", addr, 1))
		if code != http.StatusOK {
			t.Fatalf("%s: status %d: %s", addr, code, body)
		}
		var doc adDoc
		if err := xml.Unmarshal(body, &doc); err != nil {
			t.Fatalf("%s: %v\n%s", addr, err, body)
		}
		plain := strings.NewReplacer("&#39;", "'", "&amp;", "&").Replace(addr)
		if doc.Response.User.AutoDiscoverSMTPAddress != plain {
			t.Errorf("echoed address %q, want %q", doc.Response.User.AutoDiscoverSMTPAddress, plain)
		}
		a := doc.Response.Account
		if a.AccountType != "email" || a.Action != "settings" {
			t.Errorf("AccountType %q Action %q", a.AccountType, a.Action)
		}
		want := []adProtoDoc{
			{"IMAP", "imap.example.org", 993, plain, "off", "off", "on", "SSL", "on"},
			{"SMTP", testHostname, 465, plain, "off", "off", "on", "SSL", "on"},
			{"SMTP", testHostname, 587, plain, "off", "off", "on", "TLS", "on"},
			{"SMTP", testHostname, 2525, plain, "off", "off", "on", "TLS", "on"},
		}
		if !reflect.DeepEqual(a.Protocol, want) {
			t.Errorf("protocols\n got %+v\nwant %+v", a.Protocol, want)
		}
	}
}

// TestAppleProfileSigned fetches the profile over HTTPS, verifies the CMS
// signature with openssl against the test CA, and reads the content with
// Python's plistlib.
func TestAppleProfileSigned(t *testing.T) {
	openssl := testkit.RequireTool(t, "openssl")
	python := testkit.RequireTool(t, "python3")
	site := startSite(t, testConfig())
	code, body, h := site.do(t, http.MethodGet, "https://autoconfig.example.org/apple/alice@example.org.mobileconfig", "")
	if code != http.StatusOK || h.Get("Content-Type") != "application/x-apple-aspen-config" {
		t.Fatalf("status %d, type %q", code, h.Get("Content-Type"))
	}
	dir := t.TempDir()
	der, caFile, out := filepath.Join(dir, "p.mobileconfig"), filepath.Join(dir, "ca.pem"), filepath.Join(dir, "p.plist")
	certstest.WriteFile(t, der, body)
	certstest.WriteFile(t, caFile, site.ca.PEM())
	// -purpose any: a TLS server certificate signs the profile (what
	// Apple devices accept); openssl would otherwise want an S/MIME one.
	if o, err := exec.Command(openssl, "smime", "-verify", "-inform", "der", "-in", der,
		"-CAfile", caFile, "-purpose", "any", "-out", out).CombinedOutput(); err != nil {
		t.Fatalf("openssl smime -verify: %v\n%s", err, o)
	}
	// A different CA must not verify it.
	other := filepath.Join(dir, "other.pem")
	certstest.WriteFile(t, other, certstest.NewCA(t).PEM())
	if o, err := exec.Command(openssl, "smime", "-verify", "-inform", "der", "-in", der,
		"-CAfile", other, "-purpose", "any", "-out", filepath.Join(dir, "x")).CombinedOutput(); err == nil {
		t.Fatalf("the profile verified against an unrelated CA:\n%s", o)
	}
	script := `
import plistlib, sys, json
p = plistlib.load(open(sys.argv[1], 'rb'))
a = p['PayloadContent'][0]
print(json.dumps({k: p[k] for k in ('PayloadType', 'PayloadVersion', 'PayloadIdentifier', 'PayloadUUID')} |
                 {'account': {k: a[k] for k in a}}))
`
	o, err := exec.Command(python, "-c", script, out).CombinedOutput()
	if err != nil {
		t.Fatalf("plistlib: %v\n%s", err, o)
	}
	got := string(o)
	for _, want := range []string{
		`"PayloadType": "Configuration"`, `"PayloadVersion": 1`,
		`"PayloadType": "com.apple.mail.managed"`, `"EmailAccountType": "EmailTypeIMAP"`,
		`"EmailAddress": "alice@example.org"`,
		`"OutgoingMailServerHostName": "mail.example.org"`, `"OutgoingMailServerPortNumber": 465`,
		`"OutgoingMailServerUseSSL": true`, `"OutgoingMailServerUsername": "alice@example.org"`,
		`"OutgoingMailServerAuthentication": "EmailAuthPassword"`,
		`"IncomingMailServerHostName": "imap.example.org"`, `"IncomingMailServerPortNumber": 993`,
		`"IncomingMailServerUseSSL": true`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("profile lacks %s:\n%s", want, got)
		}
	}
	// The same address gets the same profile identity (re-installing
	// replaces it); the signature is fresh each time, the content is not.
	_, again, _ := site.do(t, http.MethodGet, "https://autoconfig.example.org/apple/alice@example.org.mobileconfig", "")
	out2 := filepath.Join(dir, "p2.plist")
	certstest.WriteFile(t, filepath.Join(dir, "p2.der"), again)
	if o, err := exec.Command(openssl, "smime", "-verify", "-inform", "der", "-in", filepath.Join(dir, "p2.der"),
		"-CAfile", caFile, "-purpose", "any", "-out", out2).CombinedOutput(); err != nil {
		t.Fatalf("second profile: %v\n%s", err, o)
	}
	a, _ := os.ReadFile(out)
	b, _ := os.ReadFile(out2)
	if string(a) != string(b) {
		t.Errorf("the profile content differs between two downloads")
	}
}

func TestMTASTSPolicy(t *testing.T) {
	site := startSite(t, testConfig())
	code, body, h := site.do(t, http.MethodGet, "https://mta-sts.example.org/.well-known/mta-sts.txt", "")
	want := "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.org\r\nmx: *.mx.example.org\r\nmax_age: 86400\r\n"
	if code != http.StatusOK || string(body) != want || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Fatalf("status %d type %q body %q, want %q", code, h.Get("Content-Type"), body, want)
	}
	// Only on mta-sts.D (RFC 8461 §3.3), and only over HTTPS.
	for _, u := range []string{"https://autoconfig.example.org/.well-known/mta-sts.txt", "https://example.org/.well-known/mta-sts.txt"} {
		if code, _, _ := site.do(t, http.MethodGet, u, ""); code != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", u, code)
		}
	}
	if code := rawStatus(t, site.http.Listener.Addr().String(), get("mta-sts.example.org", "/.well-known/mta-sts.txt")); code != http.StatusNotFound {
		t.Errorf("policy over plain HTTP: status %d, want 404", code)
	}
	// The TXT id follows the policy text.
	cfg := testConfig()
	cfg.MTASTSMode = ModeTesting
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if PolicyID(s.policy) == PolicyID(want) || len(PolicyID(want)) != 32 {
		t.Errorf("policy id %q for enforce, %q for testing", PolicyID(want), PolicyID(s.policy))
	}
}

func TestConfigRefused(t *testing.T) {
	for name, mod := range map[string]func(*Config){
		"no domain":           func(c *Config) { c.Domains = nil },
		"bad domain":          func(c *Config) { c.Domains = []string{"exa mple.org"} },
		"enforce without mx":  func(c *Config) { c.MTASTSMX = nil },
		"mx without mode":     func(c *Config) { c.MTASTSMode = "" },
		"bad mode":            func(c *Config) { c.MTASTSMode = "strict" },
		"max_age too long":    func(c *Config) { c.MTASTSMaxAge = 400 * 24 * 3600 * 1e9 },
		"bad mx":              func(c *Config) { c.MTASTSMX = []string{"mx\r\nmode: none"} },
		"bad tls-rpt":         func(c *Config) { c.TLSRPTEmail = `"a b"@example.org` },
		"control in username": func(c *Config) { c.Username = "%EMAILADDRESS%\n" },
	} {
		cfg := testConfig()
		cfg.Domains = append([]string(nil), cfg.Domains...)
		mod(&cfg)
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}
