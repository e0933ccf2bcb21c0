package main

// End-to-end tests of the autoconfig documents served by the built binary:
// a scripted client that sets itself up from the Thunderbird document and
// sends through every server it names into a real Postfix; the Apple
// profile's signature checked by openssl against the served certificate;
// hostile HTTP input; `dns-records` loaded by named-checkzone; the
// check-config warning; ACME (Pebble) obtaining the documents' names by
// itself, validating TLS-ALPN-01 on the HTTPS listener.

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/certs/certstest"
	"github.com/postern/postern/internal/testkit"
	"github.com/postern/postern/proxy/proxytest"
)

// autoconfigFlags turns the documents on for example.test (the test users'
// domain) on an HTTPS listener at httpsAddr; the submission host is
// localhost, which the test certificate covers.
func autoconfigFlags(httpsAddr string, more ...string) []string {
	return append([]string{"--hostname", "localhost", "--listen", "https=" + httpsAddr,
		"--autoconfig-domain", "example.test"}, more...)
}

// httpsListenAddr waits for the autoconfig listener's "listening" line
// (start it on anyPort: the kernel picks the port) and returns its address.
func httpsListenAddr(t *testing.T, p *postern) string {
	t.Helper()
	var addr string
	p.proc.WaitOutput(t, "the autoconfig listening line", 20*time.Second, func(out string) bool {
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, " msg=listening ") && strings.Contains(l, " serves=") {
				if _, a, ok := strings.Cut(l, " addr="); ok {
					addr, _, _ = strings.Cut(a, " ")
					return true
				}
			}
		}
		return false
	})
	testkit.WaitTCP(t, addr, 5*time.Second)
	return addr
}

// httpsRequest sends a raw request over TLS (the path exactly as written)
// and returns the status and body.
func httpsRequest(t *testing.T, addr, serverName, request string) (int, string) {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr,
		&tls.Config{ServerName: serverName, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS to %s: %v", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the reply to %.80q: %v", request, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func rawGet(host, target string) string {
	return fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, host)
}

// TestAutoconfigClientFollowsDocumentE2E: a script reads the Thunderbird
// document for alice@example.test and sends a message through exactly each
// outgoing server it names — implicit TLS and STARTTLS — into Postfix.
func TestAutoconfigClientFollowsDocumentE2E(t *testing.T) {
	t.Parallel()
	python := testkit.RequireTool(t, "python3")
	testkit.RequireSwaksTLS(t)
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	// The documents name the SMTP ports: they must be known before the
	// start. The HTTPS port is the kernel's pick.
	p := startPosternAt(t, testkit.FreeAddr(t), testkit.FreeAddr(t), pf.Addr, autoconfigFlags(anyPort)...)
	httpsAddr := httpsListenAddr(t, p)
	url := "https://localhost:" + strings.Split(httpsAddr, ":")[1] + "/.well-known/autoconfig/mail/config-v1.1.xml"
	cmd := exec.Command(python, "testdata/follow_autoconfig.py", url, filepath.Join(p.Dir, "cert.pem"), aliceLogin, "autoconfig")
	cmd.Env = append(os.Environ(), "PASSWORD="+alicePass)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the scripted client failed: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	_, tlsPort, _ := net.SplitHostPort(p.TLS)
	_, starttlsPort, _ := net.SplitHostPort(p.StartTLS)
	// The document lists implicit TLS first (RFC 8314), then STARTTLS.
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "localhost:"+tlsPort+" SSL as "+aliceLogin) ||
		!strings.Contains(lines[1], "localhost:"+starttlsPort+" STARTTLS as "+aliceLogin) {
		t.Fatalf("the script used other servers than the listeners:\n%s", out)
	}
	msgs := pf.WaitMessages(t, 2, 30*time.Second)
	findSubject(t, msgs, "autoconfig "+tlsPort+" SSL")
	findSubject(t, msgs, "autoconfig "+starttlsPort+" STARTTLS")
}

// TestAutoconfigHTTPSE2E: autodiscover and the signed Apple profile from
// the binary, and what an attacker sends: oversized bodies, unknown hosts,
// traversal, a header that never ends. Nothing of it reaches the log.
func TestAutoconfigHTTPSE2E(t *testing.T) {
	t.Parallel()
	openssl := testkit.RequireTool(t, "openssl")
	// The documents name the SMTP ports: they must be known before the
	// start. The HTTPS port is the kernel's pick.
	p := startPosternAt(t, testkit.FreeAddr(t), testkit.FreeAddr(t), "127.0.0.1:1", autoconfigFlags(anyPort, "--log-level", "debug",
		"--mta-sts-mode", "testing", "--mta-sts-mx", "mx.example.test")...)
	httpsAddr := httpsListenAddr(t, p)

	t.Run("autodiscover", func(t *testing.T) {
		body := `<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>secret-alice@example.test</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>`
		code, out := httpsRequest(t, httpsAddr, "autodiscover.example.test", fmt.Sprintf(
			"POST /Autodiscover/Autodiscover.xml HTTP/1.1\r\nHost: autodiscover.example.test\r\nContent-Type: text/xml\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body))
		_, tlsPort, _ := net.SplitHostPort(p.TLS)
		if code != 200 || !strings.Contains(out, "<AutoDiscoverSMTPAddress>secret-alice@example.test</AutoDiscoverSMTPAddress>") ||
			!strings.Contains(out, "<Type>SMTP</Type>\n        <Server>localhost</Server>\n        <Port>"+tlsPort+"</Port>") {
			t.Errorf("status %d:\n%s", code, out)
		}
	})
	t.Run("Apple profile signed with the served certificate", func(t *testing.T) {
		code, out := httpsRequest(t, httpsAddr, "localhost", rawGet("localhost", "/apple/secret-alice@example.test.mobileconfig"))
		if code != 200 {
			t.Fatalf("status %d: %s", code, out)
		}
		der := filepath.Join(t.TempDir(), "p.mobileconfig")
		writeFile(t, der, out)
		// The test certificate is self-signed: it is its own CA file.
		v, err := exec.Command(openssl, "smime", "-verify", "-inform", "der", "-in", der,
			"-CAfile", filepath.Join(p.Dir, "cert.pem"), "-purpose", "any").CombinedOutput()
		if err != nil || !strings.Contains(string(v), "<string>secret-alice@example.test</string>") {
			t.Errorf("openssl smime -verify: %v\n%s", err, v)
		}
	})
	t.Run("MTA-STS only on mta-sts.D", func(t *testing.T) {
		if code, out := httpsRequest(t, httpsAddr, "mta-sts.example.test", rawGet("mta-sts.example.test", "/.well-known/mta-sts.txt")); code != 200 ||
			out != "version: STSv1\r\nmode: testing\r\nmx: mx.example.test\r\nmax_age: 604800\r\n" {
			t.Errorf("status %d: %q", code, out)
		}
		if code, _ := httpsRequest(t, httpsAddr, "localhost", rawGet("autoconfig.example.test", "/.well-known/mta-sts.txt")); code != 404 {
			t.Errorf("policy on autoconfig.D: status %d, want 404", code)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		big := strings.Repeat("<x>secret-alice@example.test</x>", 3000) // ~100 KiB
		for _, tc := range []struct {
			name, req string
			want      int
		}{
			{"oversized POST", fmt.Sprintf("POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: autodiscover.example.test\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(big), big), 413},
			{"unknown host", rawGet("www.unknown.test", "/mail/config-v1.1.xml"), 404},
			{"domain not served", rawGet("localhost", "/mail/config-v1.1.xml?emailaddress=secret-alice@unknown.test"), 404},
			{"traversal", rawGet("autoconfig.example.test", "/mail/../../etc/passwd"), 404},
			{"encoded traversal", rawGet("autoconfig.example.test", "/apple/..%2f..%2fetc%2fpasswd@example.test.mobileconfig"), 404},
			{"listing", rawGet("autoconfig.example.test", "/.well-known/"), 404},
			{"header too large", "GET / HTTP/1.1\r\nHost: autoconfig.example.test\r\nX-Secret-Alice: " + strings.Repeat("a", 64<<10) + "\r\n\r\n", 431},
		} {
			if code, _ := httpsRequest(t, httpsAddr, "localhost", tc.req); code != tc.want {
				t.Errorf("%s: status %d, want %d", tc.name, code, tc.want)
			}
		}
	})
	t.Run("a header that never ends is cut off", func(t *testing.T) {
		conn, err := tls.Dial("tcp", httpsAddr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "GET /mail/config-v1.1.xml HTTP/1.1\r\nHost: autoconfig.example.test\r\n"); err != nil {
			t.Fatal(err)
		}
		// ReadHeaderTimeout is 10 s; the bound is generous.
		_ = conn.SetReadDeadline(time.Now().Add(25 * time.Second))
		if _, err := io.ReadAll(conn); err != nil {
			t.Errorf("the server kept an unfinished request open: %v", err)
		}
	})
	if strings.Contains(strings.ToLower(p.Log()), "secret-alice") || strings.Contains(p.Log(), "passwd") {
		t.Errorf("the log holds request data:\n%s", p.Log())
	}
}

// dnsRecordsArgs is a full configuration for `postern dns-records`.
var dnsRecordsArgs = []string{"dns-records", "--hostname", "mail.example.org",
	"--listen", "starttls=:587", "--listen", "tls=:465", "--listen", "starttls=:2525", "--listen", "https=:443",
	"--autoconfig-domain", "example.org", "--autoconfig-domain", "example.net",
	"--autoconfig-imap", "imap.example.org:993",
	"--mta-sts-mode", "enforce", "--mta-sts-mx", "mx1.example.org", "--mta-sts-mx", "*.mx.example.org",
	"--tls-rpt-email", "tls-reports@example.org"}

// exampleOrgZone runs dns-records and returns its output and a zone file
// for example.org: an SOA, an NS and the example.org records it printed.
func exampleOrgZone(t *testing.T) (out, zone string) {
	t.Helper()
	out, errOut, code := runPostern(t, dnsRecordsArgs...)
	if code != 0 {
		t.Fatalf("dns-records exit %d: %s", code, errOut)
	}
	i := strings.Index(out, "; Postern: records for example.net")
	if i < 0 {
		t.Fatalf("no example.net part in:\n%s", out)
	}
	zone = "$TTL 3600\n@ IN SOA ns.example.org. hostmaster.example.org. 1 7200 3600 1209600 3600\n" +
		"@ IN NS ns.example.org.\nns IN A 192.0.2.1\nmail IN A 192.0.2.2\nimap IN A 192.0.2.3\n" + out[:i]
	return out, zone
}

// TestDNSRecordsZoneE2E: `postern dns-records` prints records that a real
// DNS server's zone loader (named-checkzone) accepts, with each listener's
// port in its SRV record.
func TestDNSRecordsZoneE2E(t *testing.T) {
	t.Parallel()
	checkzone := testkit.RequireTool(t, "named-checkzone")
	out, zone := exampleOrgZone(t)
	for _, want := range []string{
		"_submissions._tcp.example.org. 3600 IN SRV 0 1 465 mail.example.org.",
		"_submission._tcp.example.org. 3600 IN SRV 10 1 587 mail.example.org.",
		"_submission._tcp.example.org. 3600 IN SRV 20 1 2525 mail.example.org.",
		"_imaps._tcp.example.org. 3600 IN SRV 0 1 993 imap.example.org.",
		"autoconfig.example.org. 3600 IN CNAME mail.example.org.",
		"autodiscover.example.org. 3600 IN CNAME mail.example.org.",
		"_autodiscover._tcp.example.org. 3600 IN SRV 0 1 443 mail.example.org.",
		"mta-sts.example.org. 3600 IN CNAME mail.example.org.",
		`_smtp._tls.example.org. 3600 IN TXT "v=TLSRPTv1; rua=mailto:tls-reports@example.org"`,
		"autoconfig.example.net. 3600 IN CNAME mail.example.org.",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	zf := filepath.Join(t.TempDir(), "example.org.zone")
	writeFile(t, zf, zone)
	res, err := exec.Command(checkzone, "-k", "fail", "-n", "fail", "example.org", zf).CombinedOutput()
	if err != nil || !strings.Contains(string(res), "OK") {
		t.Fatalf("named-checkzone refused the records: %v\n%s\nzone:\n%s", err, res, zone)
	}
	// The _mta-sts id changes with the policy.
	out2, _, _ := runPostern(t, "dns-records", "--hostname", "mail.example.org", "--autoconfig-domain", "example.org",
		"--mta-sts-mode", "testing", "--mta-sts-mx", "mx1.example.org", "--mta-sts-mx", "*.mx.example.org")
	id := func(s string) string {
		i := strings.Index(s, "v=STSv1; id=")
		if i < 0 {
			t.Fatalf("no _mta-sts record in:\n%s", s)
		}
		return s[i : i+len("v=STSv1; id=")+32]
	}
	if id(out) == id(out2) {
		t.Errorf("the _mta-sts id did not change with the mode: %s", id(out))
	}
}

// TestDNSRecordsResolveE2E: the records, served by a real named on a
// loopback port, resolve with dig the way a mail client looks them up.
func TestDNSRecordsResolveE2E(t *testing.T) {
	t.Parallel()
	named := testkit.RequireTool(t, "named")
	dig := testkit.RequireTool(t, "dig")
	_, zone := exampleOrgZone(t)
	dir := t.TempDir()
	port := testkit.FreePort(t)
	writeFile(t, filepath.Join(dir, "example.org.zone"), zone)
	writeFile(t, filepath.Join(dir, "named.conf"), fmt.Sprintf(`options {
	directory "%[1]s";
	pid-file "%[1]s/named.pid";
	session-keyfile "%[1]s/session.key";
	listen-on port %[2]d { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
};
controls { };
zone "example.org" { type primary; file "%[1]s/example.org.zone"; };
`, dir, port))
	proc := testkit.Start(t, named, "-g", "-4", "-c", filepath.Join(dir, "named.conf"))
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(proc.Output(), " running\n") { // after "all zones loaded"
		if time.Now().After(deadline) {
			t.Fatalf("named did not start:\n%s", proc.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	query := func(typ, name string) string {
		out, err := exec.Command(dig, "@127.0.0.1", "-p", strconv.Itoa(port), "+short", "+time=5", "+tries=2", typ, name).CombinedOutput()
		if err != nil {
			t.Fatalf("dig %s %s: %v\n%s", typ, name, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for _, q := range []struct{ typ, name, want string }{
		{"SRV", "_submissions._tcp.example.org", "0 1 465 mail.example.org."},
		{"SRV", "_submission._tcp.example.org", "10 1 587 mail.example.org.\n20 1 2525 mail.example.org."},
		{"SRV", "_imaps._tcp.example.org", "0 1 993 imap.example.org."},
		{"SRV", "_autodiscover._tcp.example.org", "0 1 443 mail.example.org."},
		{"CNAME", "autoconfig.example.org", "mail.example.org."},
		{"TXT", "_smtp._tls.example.org", `"v=TLSRPTv1; rua=mailto:tls-reports@example.org"`},
	} {
		got := query(q.typ, q.name)
		lines := strings.Split(got, "\n")
		slices.Sort(lines)
		if strings.Join(lines, "\n") != q.want {
			t.Errorf("%s %s: got %q, want %q", q.typ, q.name, got, q.want)
		}
	}
	if got := query("TXT", "_mta-sts.example.org"); !strings.HasPrefix(got, `"v=STSv1; id=`) || len(got) != len(`"v=STSv1; id=;"`)+32 {
		t.Errorf("_mta-sts TXT: %q", got)
	}
}

// TestAutoconfigCheckConfigE2E: check-config warns about a document host
// name no certificate covers, and not once the SNI directory has one.
func TestAutoconfigCheckConfigE2E(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := writeTestCert(t, dir)
	users := filepath.Join(dir, "users")
	writeFile(t, users, usersFileContent(t))
	base := []string{"check-config", "--upstream", "127.0.0.1:25", "--users", users, "--hostname", "localhost",
		"--tls-cert", certFile, "--tls-key", keyFile, "--autoconfig-domain", "example.test",
		"--mta-sts-mode", "testing", "--mta-sts-mx", "mx.example.test"}
	out, errOut, code := runPostern(t, base...)
	if code != 0 {
		t.Fatalf("check-config exit %d: %s%s", code, out, errOut)
	}
	for _, name := range []string{"autoconfig.example.test", "autodiscover.example.test", "mta-sts.example.test"} {
		if !strings.Contains(out, "WARNING: no certificate covers "+name) {
			t.Errorf("no warning for %s:\n%s", name, out)
		}
	}
	le := certstest.NewLetsEncryptDir(t, certstest.NewCA(t))
	le.Put("autoconfig.example.test", "autoconfig.example.test", "autodiscover.example.test", "mta-sts.example.test")
	out, errOut, code = runPostern(t, append(base, "--tls-sni-dir", le.Live())...)
	if code != 0 || strings.Contains(out, "WARNING: no certificate covers") {
		t.Errorf("exit %d, still warning with the names in the SNI directory:\n%s%s", code, out, errOut)
	}
	// Configuration errors exit non-zero and say what is wrong.
	plain := []string{"check-config", "--hostname", "mail.example.test", "--upstream", "127.0.0.1:25", "--users", users, "--tls-cert", certFile, "--tls-key", keyFile}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"https without domains", []string{"--listen", "https=127.0.0.1:8443"}, "--autoconfig-domain"},
		{"two https listeners", []string{"--autoconfig-domain", "example.test", "--listen", "https=:8443", "--listen", "https=:9443"}, "only one https"},
		{"bad domain", []string{"--autoconfig-domain", "exa_mple.test"}, "not a host name"},
		{"bad mode", []string{"--autoconfig-domain", "example.test", "--mta-sts-mode", "strict"}, "want testing, enforce or none"},
		{"enforce without mx", []string{"--autoconfig-domain", "example.test", "--mta-sts-mode", "enforce"}, "--mta-sts-mx"},
		{"bad imap", []string{"--autoconfig-domain", "example.test", "--autoconfig-imap", "imap.example.test"}, "--autoconfig-imap"},
		{"single-label host name", []string{"--hostname", "vm", "--autoconfig-domain", "example.test"}, "fully qualified"},
		{"bad tls-rpt address", []string{"--autoconfig-domain", "example.test", "--tls-rpt-email", "reports"}, "TLS-RPT"},
	} {
		if _, errOut, code := runPostern(t, append(slices.Clone(plain), tc.args...)...); code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, want an error naming %q: %s", tc.name, code, tc.want, errOut)
		}
	}
}

// TestAutoconfigACMEPebbleE2E: with ACME on, the documents' host names join
// the allow-list by themselves; Pebble validates TLS-ALPN-01 on the HTTPS
// listener; a client then verifies autoconfig.D's certificate against
// Pebble's root, and the HTTP-01 listener serves the documents too.
func TestAutoconfigACMEPebbleE2E(t *testing.T) {
	t.Parallel()
	pebble := certstest.StartPebble(t, 24*time.Hour)
	const host, domain = "mail.postern.test", "postern.test"
	httpsAddr := "127.0.0.1:" + strconv.Itoa(pebble.TLSPort)
	httpAddr := "127.0.0.1:" + strconv.Itoa(pebble.HTTPPort)
	// The documents name the SMTP ports: they must be known before the start.
	p := startPosternBareAt(t, testkit.FreeAddr(t), testkit.FreeAddr(t), "127.0.0.1:1", []string{"SSL_CERT_FILE=" + pebble.HTTPSCertFile},
		"--hostname", host, "--listen", "https="+httpsAddr,
		"--acme-domain", host, "--acme-email", "postmaster@postern.test", "--acme-cache", t.TempDir(),
		"--acme-directory", pebble.DirURL, "--acme-http", httpAddr,
		"--autoconfig-domain", domain, "--mta-sts-mode", "enforce", "--mta-sts-mx", "mx.postern.test")
	for _, name := range []string{"autoconfig." + domain, "autodiscover." + domain, "mta-sts." + domain} {
		p.waitLog(t, `certs: ACME certificate ready" name=`+name, 90*time.Second)
	}
	// Pebble logs its HTTP-01 attempts only. autocert answers HTTP-01 and
	// TLS-ALPN-01 and prefers the latter; Pebble's TLS-ALPN-01 port is the
	// HTTPS listener (the SMTP listeners are elsewhere), so no HTTP attempt
	// means every name was validated there.
	if strings.Contains(pebble.Log(), "Attempting to validate w/ HTTP") {
		t.Errorf("Pebble validated over HTTP-01, not TLS-ALPN-01 on the HTTPS listener:\n%s", pebble.Log())
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pebble.Roots},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if strings.HasSuffix(addr, ":443") {
				addr = httpsAddr
			} else {
				addr = httpAddr
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	for _, u := range []string{"https://autoconfig." + domain + "/mail/config-v1.1.xml", "http://autoconfig." + domain + "/mail/config-v1.1.xml",
		"https://mta-sts." + domain + "/.well-known/mta-sts.txt"} {
		resp, err := client.Get(u)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "<domain>"+domain+"</domain>") && !strings.Contains(string(body), "mode: enforce\r\nmx: mx.postern.test\r\n") {
			t.Errorf("%s: status %d:\n%s", u, resp.StatusCode, body)
		}
		if resp.TLS != nil {
			leaf := resp.TLS.PeerCertificates[0]
			if err := leaf.VerifyHostname(resp.Request.URL.Hostname()); err != nil {
				t.Errorf("certificate: %v", err)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pebble.Roots, Intermediates: pool(resp.TLS.PeerCertificates[1:])}); err != nil {
				t.Errorf("certificate does not chain to Pebble: %v", err)
			}
		}
	}
}

func pool(certs []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// TestAutoconfigAppleTitleAndEncodedSlashE2E (issue 18, hole 9): the
// signed Apple profile for any local part of a served domain is named after
// the domain, never after the requested address (a "Verified" profile
// titled Verify-your-account-at-evil.example@… was the hole); and a path
// with an encoded slash is refused, as the README says, not decoded into a
// document's path.
func TestAutoconfigAppleTitleAndEncodedSlashE2E(t *testing.T) {
	t.Parallel()
	openssl := testkit.RequireTool(t, "openssl")
	python := testkit.RequireTool(t, "python3")
	// The documents name the SMTP ports: they must be known before the start.
	p := startPosternAt(t, testkit.FreeAddr(t), testkit.FreeAddr(t), "127.0.0.1:1", autoconfigFlags(anyPort)...)
	httpsAddr := httpsListenAddr(t, p)

	t.Run("Apple profile named after the domain", func(t *testing.T) {
		const local = "Verify-your-account-at-evil.example"
		code, out := httpsRequest(t, httpsAddr, "localhost", rawGet("autoconfig.example.test", "/apple/"+local+"@example.test.mobileconfig"))
		if code != 200 {
			t.Fatalf("status %d: %s", code, out)
		}
		dir := t.TempDir()
		der, plist := filepath.Join(dir, "p.mobileconfig"), filepath.Join(dir, "p.plist")
		writeFile(t, der, out)
		if v, err := exec.Command(openssl, "smime", "-verify", "-inform", "der", "-in", der, "-out", plist,
			"-CAfile", filepath.Join(p.Dir, "cert.pem"), "-purpose", "any").CombinedOutput(); err != nil {
			t.Fatalf("openssl smime -verify: %v\n%s", err, v)
		}
		// Every string of the profile as KEY<TAB>VALUE, the top level's
		// last, read by Python's plistlib as a device would read it.
		script := `
import plistlib, sys
def walk(d):
    for k, v in d.items():
        if isinstance(v, list):
            for x in v: walk(x)
        elif isinstance(v, str):
            print(k + "\t" + v)
p = plistlib.load(open(sys.argv[1], 'rb'))
for a in p['PayloadContent']: walk(a)
walk({k: v for k, v in p.items() if k != 'PayloadContent'})
`
		o, err := exec.Command(python, "-c", script, plist).CombinedOutput()
		if err != nil {
			t.Fatalf("plistlib: %v\n%s", err, o)
		}
		var title string
		email := false
		for _, line := range strings.Split(strings.TrimSpace(string(o)), "\n") {
			key, value, _ := strings.Cut(line, "\t")
			if key == "PayloadDisplayName" {
				title = value
			}
			if !strings.Contains(value, local) {
				continue
			}
			switch key {
			case "EmailAddress":
				email = value == local+"@example.test"
			case "OutgoingMailServerUsername", "IncomingMailServerUsername":
			default:
				t.Errorf("%s shows the requested local part: %q", key, value)
			}
		}
		if title != "Mail at example.test" || !email {
			t.Errorf("title %q, address in EmailAddress %v; the profile:\n%s", title, email, o)
		}
	})
	t.Run("encoded slashes refused", func(t *testing.T) {
		for _, target := range []string{"/mail%2fconfig-v1.1.xml", "/mail%2Fconfig-v1.1.xml", "/.well-known%2fautoconfig/mail/config-v1.1.xml"} {
			host := "autoconfig.example.test"
			if strings.HasPrefix(target, "/.well-known") {
				host = "example.test"
			}
			if code, out := httpsRequest(t, httpsAddr, "localhost", rawGet(host, target)); code != 404 {
				t.Errorf("%s: status %d, want 404: %.200s", target, code, out)
			}
		}
		// The same documents without encoding are served.
		if code, out := httpsRequest(t, httpsAddr, "localhost", rawGet("autoconfig.example.test", "/mail/config-v1.1.xml")); code != 200 {
			t.Errorf("plain path: status %d: %.200s", code, out)
		}
	})
}
