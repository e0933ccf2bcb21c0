package autoconfig

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/certs/certstest"
)

// The test's mail domain and host names.
const (
	testDomain   = "example.org"
	testHostname = "mail.example.org"
)

// testConfig is a Postern with the three default listeners and an IMAP
// server, MTA-STS in enforce mode.
func testConfig() Config {
	return Config{
		Domains: []string{testDomain},
		Submission: []Endpoint{
			{Host: testHostname, Port: 587},
			{Host: testHostname, Port: 465, ImplicitTLS: true},
			{Host: testHostname, Port: 2525},
		},
		IMAP:         &Endpoint{Host: "imap.example.org", Port: 993, ImplicitTLS: true},
		MTASTSMode:   ModeEnforce,
		MTASTSMX:     []string{"mx1.example.org", "*.mx.example.org"},
		MTASTSMaxAge: 86400 * time.Second,
		TLSRPTEmail:  "tlsrpt@example.org",
		HTTPSPort:    443,
	}
}

// testSite is the handler behind a real HTTPS listener with a certificate
// from a test CA for the host names, and a plain HTTP one (the HTTP-01
// listener's role).
type testSite struct {
	ca     *certstest.CA
	https  *httptest.Server
	http   *httptest.Server
	client *http.Client // trusts ca; dials https for every name
	cert   tls.Certificate
}

func startSite(t *testing.T, cfg Config) *testSite {
	t.Helper()
	ca := certstest.NewCA(t)
	chain, key := ca.Issue(t, 24*time.Hour, testHostname, "autoconfig."+testDomain,
		"autodiscover."+testDomain, "mta-sts."+testDomain, testDomain)
	cert, err := tls.X509KeyPair(chain, key)
	if err != nil {
		t.Fatal(err)
	}
	site := &testSite{ca: ca, cert: cert}
	cfg.Certificate = func(string) (*tls.Certificate, error) { return &site.cert, nil }
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	site.https = httptest.NewUnstartedServer(s.Handler())
	site.https.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	site.https.StartTLS()
	t.Cleanup(site.https.Close)
	site.http = httptest.NewServer(s.Handler())
	t.Cleanup(site.http.Close)
	addr := site.https.Listener.Addr().String()
	site.client = &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: ca.Pool},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
		},
	}
	return site
}

// get fetches url (https://NAME/...: name checked against the certificate)
// and returns the status and body.
func (s *testSite) do(t *testing.T, method, url, body string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

// rawStatus sends a request exactly as written (no client-side cleaning of
// the path) to addr over plain TCP and returns the status code.
func rawStatus(t *testing.T, addr, request string) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the reply to %q: %v", request, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func get(host, target string) string {
	return fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, host)
}
