package autoconfig

import (
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzParseAddress: whatever parseAddress accepts is a plain address that
// fits the limits, has no byte that could break out of a document, a
// header or a path, and comes back whole.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"alice@example.org", "o'neil&co@Example.ORG", "a.b+tag@sub.example.org",
		`"quoted"@example.org`, "a@b", "@example.org", "a@", "a..b@example.org", "a@-x.org", "a@[127.0.0.1]",
		"a@b@example.org", "é@example.org", "a\r\n@example.org", "a<b>@example.org", "a/../b@example.org"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		local, domain, err := parseAddress(s)
		if err != nil {
			return
		}
		if len(s) > maxAddress || len(local) > maxLocalPart || local+"@"+domain != s[:len(local)+1]+strings.ToLower(s[len(local)+1:]) {
			t.Fatalf("accepted %q as %q @ %q", s, local, domain)
		}
		if strings.ContainsAny(s, "<>\" \t\r\n\\\x00()[],;:") {
			t.Fatalf("accepted %q with a special byte", s)
		}
		for i := 0; i < len(s); i++ {
			if s[i] >= 0x7f || s[i] < 0x21 {
				t.Fatalf("accepted %q with byte %#x", s, s[i])
			}
		}
	})
}

// FuzzAutodiscoverRequest: any body either gets a 4xx or a response that
// is well-formed XML echoing exactly the address it parsed.
func FuzzAutodiscoverRequest(f *testing.F) {
	f.Add(strings.Replace(outlookRequest, "%s", "alice@example.org", 1))
	f.Add(strings.Replace(outlookRequest, "%s", "o&amp;neil@example.org", 1))
	f.Add("<Autodiscover><Request><EMailAddress>x@example.org</EMailAddress></Request></Autodiscover>")
	f.Add("<Autodiscover><Request><EMailAddress>x@other.test</EMailAddress></Request></Autodiscover>")
	f.Add(`<!DOCTYPE a [<!ENTITY x "y">]><Autodiscover><Request><EMailAddress>&x;</EMailAddress></Request></Autodiscover>`)
	f.Add("<Autodiscover><Request><EMailAddress><![CDATA[a<b@example.org]]></EMailAddress></Request></Autodiscover>")
	f.Add("not xml")
	cfg := testConfig()
	s, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	h := s.Handler()
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, "https://autodiscover.example.org/autodiscover/autodiscover.xml", strings.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusBadRequest, http.StatusNotFound, http.StatusRequestEntityTooLarge:
			return
		case http.StatusOK:
		default:
			t.Fatalf("status %d for %q", rec.Code, body)
		}
		addr, err := parseAutodiscoverRequest([]byte(body))
		if err != nil {
			t.Fatalf("200 for a body that does not parse: %q", body)
		}
		var doc adDoc
		if err := xml.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
			t.Fatalf("response is not XML: %v\n%s", err, rec.Body.Bytes())
		}
		local, domain, _ := parseAddress(addr)
		if got := doc.Response.User.AutoDiscoverSMTPAddress; got != local+"@"+domain {
			t.Fatalf("echoed %q for %q", got, addr)
		}
	})
}

// FuzzRequest drives the whole handler with any host, target and method:
// no panic, only the expected statuses, and every 200 is a document.
func FuzzRequest(f *testing.F) {
	for _, seed := range [][3]string{
		{"GET", "autoconfig.example.org", "/mail/config-v1.1.xml"},
		{"GET", "example.org", "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=a%40example.org"},
		{"GET", "mta-sts.example.org", "/.well-known/mta-sts.txt"},
		{"GET", "x", "/apple/a@example.org.mobileconfig"},
		{"GET", "x", "/apple/..%2fa@example.org.mobileconfig"},
		{"GET", "autoconfig.example.org", "/mail%2Fconfig-v1.1.xml"},
		{"HEAD", "AUTOCONFIG.EXAMPLE.ORG.:80", "/mail/config-v1.1.xml?emailaddress=%00"},
		{"DELETE", "example.org", "/"},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	s, err := New(testConfig())
	if err != nil {
		f.Fatal(err)
	}
	h := s.Handler()
	f.Fuzz(func(t *testing.T, method, host, target string) {
		req, err := http.NewRequest(method, "https://placeholder"+target, nil)
		if err != nil || !strings.HasPrefix(target, "/") {
			return
		}
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case 200:
			if strings.Contains(strings.ToLower(req.URL.EscapedPath()), "%2f") {
				t.Fatalf("200 for the encoded slash of %q", target)
			}
			body := rec.Body.String()
			if method == http.MethodGet && !strings.HasPrefix(body, "<?xml") && !strings.HasPrefix(body, "version: STSv1") {
				t.Fatalf("200 with %q", body)
			}
		case 400, 404, 405:
		default:
			t.Fatalf("status %d for %s %s %s", rec.Code, method, host, target)
		}
	})
}
