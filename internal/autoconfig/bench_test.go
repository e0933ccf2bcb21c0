package autoconfig

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/certs/certstest"
)

// BenchmarkDocuments measures one request of each kind through the handler
// (no network): the cost a flood of requests puts on the server.
func BenchmarkDocuments(b *testing.B) {
	ca := certstest.NewCA(b)
	chain, key := ca.Issue(b, time.Hour, testHostname)
	cert, err := tls.X509KeyPair(chain, key)
	if err != nil {
		b.Fatal(err)
	}
	cfg := testConfig()
	cfg.Certificate = func(string) (*tls.Certificate, error) { return &cert, nil }
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	for _, bc := range []struct{ name, method, url, body string }{
		{"thunderbird", "GET", "https://autoconfig.example.org/mail/config-v1.1.xml?emailaddress=alice@example.org", ""},
		{"autodiscover", "POST", "https://autodiscover.example.org/autodiscover/autodiscover.xml", strings.Replace(outlookRequest, "%s", "alice@example.org", 1)},
		{"apple-signed", "GET", "https://autoconfig.example.org/apple/alice@example.org.mobileconfig", ""},
		{"mta-sts-404-over-http", "GET", "http://mta-sts.example.org/.well-known/mta-sts.txt", ""},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				req := httptest.NewRequest(bc.method, bc.url, strings.NewReader(bc.body))
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK && rec.Code != http.StatusNotFound {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
	}
}
