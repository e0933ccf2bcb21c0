package autoconfig

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestBadInput sends what an attacker or a lost crawler sends, on the wire
// exactly as written (no client cleans the paths), and expects a 4xx with
// nothing about the request in the log.
func TestBadInput(t *testing.T) {
	var logBuf bytes.Buffer
	cfg := testConfig()
	cfg.Log = slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	post := func(host, body string) string {
		return fmt.Sprintf("POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", host, len(body), body)
	}
	big := strings.Replace(outlookRequest, "%s", "secret-probe@example.org", 1) + strings.Repeat(" ", MaxAutodiscoverBody)
	cases := []struct {
		name, req string
		want      int
	}{
		{"unknown host", get("www.other.test", "/mail/config-v1.1.xml"), 404},
		{"IP host, no address", get("127.0.0.1", "/mail/config-v1.1.xml"), 404},
		{"domain not served", get("autoconfig.example.org", "/mail/config-v1.1.xml?emailaddress=secret-probe@other.test"), 404},
		{"bad address", get("autoconfig.example.org", "/mail/config-v1.1.xml?emailaddress=%22secret-probe%22@example.org"), 400},
		{"address with a newline", get("autoconfig.example.org", "/mail/config-v1.1.xml?emailaddress=secret-probe%0a@example.org"), 400},
		{"root", get("autoconfig.example.org", "/"), 404},
		{"directory", get("autoconfig.example.org", "/mail/"), 404},
		{"well-known listing", get("example.org", "/.well-known/"), 404},
		{"dot-dot", get("autoconfig.example.org", "/mail/../mail/config-v1.1.xml"), 404},
		{"traversal", get("autoconfig.example.org", "/.well-known/autoconfig/mail/../../../../etc/passwd"), 404},
		{"encoded traversal", get("autoconfig.example.org", "/apple/%2e%2e%2f%2e%2e%2fetc%2fpasswd.mobileconfig"), 404},
		{"encoded slash in address", get("autoconfig.example.org", "/apple/a%2fb@example.org.mobileconfig"), 404},
		// The README says encoded slashes are refused: r.URL.Path is
		// decoded, so these named a document.
		{"encoded slash", get("autoconfig.example.org", "/mail%2fconfig-v1.1.xml"), 404},
		{"encoded slash, upper case", get("autoconfig.example.org", "/mail%2Fconfig-v1.1.xml"), 404},
		{"encoded slashes, well-known", get("example.org", "/.well-known%2fautoconfig%2Fmail%2fconfig-v1.1.xml"), 404},
		{"encoded slash, MTA-STS", get("mta-sts.example.org", "/.well-known%2fmta-sts.txt"), 404},
		{"encoded slash, autodiscover", strings.Replace(post("autodiscover.example.org", strings.Replace(outlookRequest, "%s", "secret-probe@example.org", 1)),
			"/autodiscover/autodiscover.xml", "/autodiscover%2Fautodiscover.xml", 1), 404},
		{"double slash", get("autoconfig.example.org", "//mail/config-v1.1.xml"), 404},
		{"trailing slash", get("autoconfig.example.org", "/mail/config-v1.1.xml/"), 404},
		{"apple bad address", get("autoconfig.example.org", "/apple/secret-probe.mobileconfig"), 400},
		{"apple other domain", get("autoconfig.example.org", "/apple/secret-probe@other.test.mobileconfig"), 404},
		{"autodiscover GET", get("autodiscover.example.org", "/autodiscover/autodiscover.xml"), 405},
		{"oversized POST", post("autodiscover.example.org", big), 413},
		{"POST not XML", post("autodiscover.example.org", "secret-probe@example.org"), 400},
		{"POST without address", post("autodiscover.example.org", "<Autodiscover><Request/></Autodiscover>"), 400},
		{"POST other domain", post("autodiscover.example.org", strings.Replace(outlookRequest, "%s", "secret-probe@other.test", 1)), 404},
		{"POST entity", post("autodiscover.example.org", `<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><Autodiscover><Request><EMailAddress>&x;</EMailAddress></Request></Autodiscover>`), 400},
		{"config via PUT", "PUT /mail/config-v1.1.xml HTTP/1.1\r\nHost: autoconfig.example.org\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 405},
	}
	for _, tc := range cases {
		if got := rawStatus(t, addr, tc.req); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
	}
	if strings.Contains(logBuf.String(), "secret-probe") || strings.Contains(logBuf.String(), "passwd") {
		t.Errorf("the log holds request data:\n%s", logBuf.String())
	}
}

// TestSameAnswerForAnyAddress: the documents depend on nothing but the
// address's text, so they cannot tell an existing user from a made-up one.
func TestSameAnswerForAnyAddress(t *testing.T) {
	site := startSite(t, testConfig())
	for _, u := range []string{
		"https://autoconfig.example.org/mail/config-v1.1.xml?emailaddress=%s",
		"https://autoconfig.example.org/apple/%s.mobileconfig",
	} {
		codeA, a, _ := site.do(t, http.MethodGet, fmt.Sprintf(u, "alice@example.org"), "")
		codeB, b, _ := site.do(t, http.MethodGet, fmt.Sprintf(u, "nosuchuser@example.org"), "")
		if codeA != 200 || codeB != 200 {
			t.Fatalf("%s: status %d and %d", u, codeA, codeB)
		}
		if strings.Contains(u, "apple") {
			// Signed, with identifiers hashed from the address: both
			// being served is what matters here.
			continue
		}
		if strings.ReplaceAll(string(b), "nosuchuser", "alice") != string(a) {
			t.Errorf("%s: the answers differ beyond the address:\n%s\n%s", u, a, b)
		}
	}
	code, a, _ := site.do(t, http.MethodPost, "https://autodiscover.example.org/autodiscover/autodiscover.xml", strings.Replace(outlookRequest, "%s", "alice@example.org", 1))
	_, b, _ := site.do(t, http.MethodPost, "https://autodiscover.example.org/autodiscover/autodiscover.xml", strings.Replace(outlookRequest, "%s", "nosuchuser@example.org", 1))
	if code != 200 || strings.ReplaceAll(string(b), "nosuchuser", "alice") != string(a) {
		t.Errorf("autodiscover answers differ beyond the address:\n%s\n%s", a, b)
	}
}
