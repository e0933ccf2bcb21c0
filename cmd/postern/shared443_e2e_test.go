package main

// End-to-end tests of the shared listener (--listen tls+https=, issue 20)
// with real clients: openssl s_client and swaks for SMTP, curl for HTTP/1.1
// and HTTP/2, a Python client without ALPN for both, and a flood of
// handshakes that never finish.

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postern/postern/certs/certstest"
	"github.com/postern/postern/internal/testkit"
	"github.com/postern/postern/proxy/proxytest"
)

// startShared runs postern with the STARTTLS and implicit TLS listeners,
// a tls+https one and the documents for example.test (--hostname
// localhost, which the test certificate covers). It returns postern and
// the shared listener's address (chosen before the start: the documents
// name it).
func startShared(t *testing.T, upstream string, extra ...string) (*postern, string) {
	t.Helper()
	shared := testkit.FreeAddr(t)
	p := startPosternAt(t, testkit.FreeAddr(t), testkit.FreeAddr(t), upstream, append([]string{
		"--hostname", "localhost", "--listen", "tls+https=" + shared,
		"--autoconfig-domain", "example.test"}, extra...)...)
	waitListening(t, p.proc, shared)
	return p, shared
}

// curlDocument fetches the Thunderbird document from the shared listener
// with curl and the given protocol flag; it returns the body and the HTTP
// version curl used.
func curlDocument(t *testing.T, addr, protoFlag string) (body, version string) {
	t.Helper()
	curl := testkit.RequireTool(t, "curl")
	_, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command(curl, "-sS", "-k", "--max-time", "20", protoFlag, "-w", "\nversion=%{http_version}",
		"--resolve", "autoconfig.example.test:"+port+":127.0.0.1",
		"https://autoconfig.example.test:"+port+"/mail/config-v1.1.xml").CombinedOutput()
	if err != nil {
		t.Fatalf("curl %s: %v\n%s", protoFlag, err, out)
	}
	body, version, _ = strings.Cut(string(out), "\nversion=")
	return body, version
}

// pythonNoALPN connects to addr over TLS without ALPN, with the TLS
// server name sni, sends send (if any) and prints what it reads until the
// server closes or 10 s pass without a byte.
const pythonNoALPN = `
import socket, ssl, sys
addr, sni, send = sys.argv[1], sys.argv[2], sys.argv[3].encode()
host, port = addr.rsplit(":", 1)
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=10), server_hostname=sni)
if send:
    s.sendall(send)
out = b""
try:
    while True:
        b = s.recv(4096)
        if not b:
            break
        out += b
        if not send and b"\r\n" in out:
            break
except socket.timeout:
    pass
sys.stdout.write(out.decode("utf-8", "replace"))
`

func runPythonNoALPN(t *testing.T, addr, sni, send string) string {
	t.Helper()
	python := testkit.RequirePythonSSL(t)
	out, err := exec.Command(python, "-c", pythonNoALPN, addr, sni, send).CombinedOutput()
	if err != nil {
		t.Fatalf("python client: %v\n%s", err, out)
	}
	return string(out)
}

// TestSharedListenerE2E: one port, both services. ALPN smtp (openssl
// s_client) and no ALPN with an SMTP server name (swaks --tlsc) submit a
// message that Postfix delivers; curl over HTTP/1.1 and HTTP/2 gets the
// Thunderbird document, which lists the shared port after 465 and 587; a
// client without ALPN that speaks first gets the document, one that waits
// gets the banner; ALPN the port does not serve is refused.
func TestSharedListenerE2E(t *testing.T) {
	t.Parallel()
	testkit.RequireSwaksTLS(t)
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	p, shared := startShared(t, pf.Addr, "--shared-smtp-name", "smtp.example.test")
	_, sharedPort, _ := net.SplitHostPort(shared)

	t.Run("openssl ALPN smtp submits a message", func(t *testing.T) {
		plain := base64.StdEncoding.EncodeToString([]byte("\x00" + aliceLogin + "\x00" + alicePass))
		script := strings.Join([]string{"EHLO client.test", "AUTH PLAIN " + plain,
			"MAIL FROM:<" + aliceLogin + ">", "RCPT TO:<friend@example.test>", "DATA",
			"From: " + aliceLogin, "Subject: shared alpn smtp", "", "over 443", ".", "QUIT", ""}, "\r\n")
		out := sClientSession(t, shared, script, "-alpn", "smtp")
		if !strings.Contains(out, "220 localhost ") || !strings.Contains(out, "235 ") || !strings.Contains(out, "221 ") {
			t.Fatalf("openssl -alpn smtp: want banner, 235 and 221:\n%s", out)
		}
		findSubject(t, pf.WaitMessages(t, 1, 30*time.Second), "shared alpn smtp")
	})
	t.Run("swaks without ALPN, SMTP server name", func(t *testing.T) {
		out, code := swaks(t, "--server", shared, "--tlsc", "--tls-sni", "smtp.example.test",
			"--auth", "PLAIN", "--auth-user", bobLogin, "--auth-password", bobPass,
			"--from", bobLogin, "--to", "friend@example.test", "--header", "Subject: shared swaks sni")
		if code != 0 {
			t.Fatalf("swaks failed (%d):\n%s", code, out)
		}
		findSubject(t, pf.WaitMessages(t, 2, 30*time.Second), "shared swaks sni")
	})
	t.Run("curl HTTP/1.1 and HTTP/2 get the document", func(t *testing.T) {
		_, tlsPort, _ := net.SplitHostPort(p.TLS)
		_, starttlsPort, _ := net.SplitHostPort(p.StartTLS)
		for _, tc := range []struct{ flag, version string }{{"--http1.1", "1.1"}, {"--http2", "2"}} {
			body, version := curlDocument(t, shared, tc.flag)
			if version != tc.version {
				t.Errorf("curl %s: HTTP version %q, want %q", tc.flag, version, tc.version)
			}
			i465 := strings.Index(body, "<port>"+tlsPort+"</port>")
			i587 := strings.Index(body, "<port>"+starttlsPort+"</port>")
			i443 := strings.Index(body, "<port>"+sharedPort+"</port>")
			if i465 < 0 || i587 < i465 || i443 < i587 || !strings.Contains(body[i443:], "<socketType>SSL</socketType>") {
				t.Errorf("curl %s: want implicit TLS, STARTTLS, then the shared port (SSL):\n%s", tc.flag, body)
			}
		}
	})
	t.Run("Outlook lists the shared port last, the Apple profile keeps 465", func(t *testing.T) {
		_, tlsPort, _ := net.SplitHostPort(p.TLS)
		_, starttlsPort, _ := net.SplitHostPort(p.StartTLS)
		body := `<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>alice@example.test</EMailAddress></Request></Autodiscover>`
		code, out := httpsRequest(t, shared, "autodiscover.example.test", fmt.Sprintf(
			"POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: autodiscover.example.test\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body))
		i465 := strings.Index(out, "<Port>"+tlsPort+"</Port>")
		i587 := strings.Index(out, "<Port>"+starttlsPort+"</Port>")
		i443 := strings.Index(out, "<Port>"+sharedPort+"</Port>")
		if code != 200 || i465 < 0 || i587 < i465 || i443 < i587 {
			t.Errorf("autodiscover: status %d, want implicit TLS, STARTTLS, then the shared port:\n%s", code, out)
		}
		code, out = httpsRequest(t, shared, "autoconfig.example.test", rawGet("autoconfig.example.test", "/apple/alice@example.test.mobileconfig"))
		if code != 200 || !strings.Contains(out, "<integer>"+tlsPort+"</integer>") || strings.Contains(out, "<integer>"+sharedPort+"</integer>") {
			t.Errorf("Apple profile: status %d, want the implicit TLS port %s only:\n%s", code, tlsPort, out)
		}
	})
	t.Run("no ALPN: who speaks first", func(t *testing.T) {
		out := runPythonNoALPN(t, shared, "autoconfig.example.test",
			"GET /mail/config-v1.1.xml HTTP/1.1\r\nHost: autoconfig.example.test\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(out, "HTTP/1.1 200 ") || !strings.Contains(out, "<port>"+sharedPort+"</port>") {
			t.Errorf("a client without ALPN sending a request: want the document, got:\n%s", out)
		}
		// Go's client sends its request right behind its Finished, often
		// in the same segment: the server reads it with the handshake.
		for i := range 3 {
			if code, out := httpsRequest(t, shared, "autoconfig.example.test", rawGet("autoconfig.example.test", "/mail/config-v1.1.xml")); code != 200 || !strings.Contains(out, "<clientConfig") {
				t.Errorf("Go client without ALPN, request %d: status %d:\n%s", i, code, out)
			}
		}
		if out := runPythonNoALPN(t, shared, "autoconfig.example.test", ""); !strings.HasPrefix(out, "220 localhost ") {
			t.Errorf("a client without ALPN that waits: want the banner, got:\n%q", out)
		}
	})
	t.Run("strict ALPN", func(t *testing.T) {
		out, ok := sClient(t, shared, "-alpn", "imap")
		if ok || !strings.Contains(out, "no application protocol") {
			t.Errorf("ALPN imap on the shared port: want the no_application_protocol alert, got:\n%s", out)
		}
	})
}

// holdSilent opens n TCP connections to addr that never send a byte: TLS
// handshakes that never start.
func holdSilent(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var conns []net.Conn
	for range n {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns = append(conns, c)
	}
	return conns
}

// closedByServer reports whether the server closed c (a read ends in EOF
// or a reset) within bound.
func closedByServer(c net.Conn, bound time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(bound))
	_, err := c.Read(make([]byte, 1))
	if err == nil {
		return false
	}
	var ne net.Error
	return !errors.As(err, &ne) || !ne.Timeout()
}

// smtpBanner opens an implicit-TLS connection with ALPN alpn ("" none)
// and returns it and the first line it reads.
func smtpBanner(t *testing.T, addr, alpn string) (net.Conn, string) {
	t.Helper()
	conf := &tls.Config{InsecureSkipVerify: true}
	if alpn != "" {
		conf.NextProtos = []string{alpn}
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, conf)
	if err != nil {
		return nil, "dial: " + err.Error()
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return c, "read: " + err.Error()
	}
	return c, line
}

// TestSharedListenerHandshakeFloodE2E: connections that never finish their
// handshake count in the HTTP budget (--max-http-connections), not in the
// SMTP one: with the HTTP budget full of them, the next connection to the
// shared port is closed at accept, while 465 serves as many sessions as
// --max-connections allows. The handshake has a deadline: the server closes
// them by itself. A connection that chose SMTP gives its HTTP slot back:
// more SMTP sessions than the HTTP budget holds run on the shared port, and
// HTTP is served beside them.
func TestSharedListenerHandshakeFloodE2E(t *testing.T) {
	t.Parallel()
	const httpCap, smtpCap = 4, 8
	p, shared := startShared(t, "127.0.0.1:1", "--max-http-connections", fmt.Sprint(httpCap),
		"--max-http-connections-per-ip", "0", "--max-connections", fmt.Sprint(smtpCap))

	flood := holdSilent(t, shared, httpCap-1)
	// One more dribbles a ClientHello, a byte every 200 ms: the deadline
	// counts from accept, not from the last byte.
	dribbler, err := net.DialTimeout("tcp", shared, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dribbler.Close() })
	flood = append(flood, dribbler)
	go func() {
		if _, err := dribbler.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00}); err != nil { // handshake record, 512 bytes
			return
		}
		for range 200 { // 40 s at most
			time.Sleep(200 * time.Millisecond)
			if _, err := dribbler.Write([]byte{0x01}); err != nil {
				return
			}
		}
	}()
	// Closed at accept once the budget is full (the accept loop may not
	// have counted the last of the flood yet when this one dials: retry).
	refused := false
	for range 50 {
		c, err := net.DialTimeout("tcp", shared, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		refused = closedByServer(c, 2*time.Second)
		c.Close()
		if refused {
			break
		}
	}
	if !refused {
		t.Fatalf("with %d handshakes pending, a new connection to the shared port was not closed at accept", httpCap)
	}
	// SMTP on 465 is untouched: smtpCap-3 sessions (more than would fit if
	// the pending handshakes counted against --max-connections).
	var held []net.Conn
	for i := range smtpCap - 3 {
		c, line := smtpBanner(t, p.TLS, "")
		if !strings.HasPrefix(line, "220 ") {
			t.Fatalf("465 session %d during the flood: %q", i, line)
		}
		held = append(held, c)
	}
	// The handshake deadline (10 s) ends the flood without the client.
	for i, c := range flood {
		if !closedByServer(c, 40*time.Second) {
			t.Fatalf("pending handshake %d was not closed by the server", i)
		}
	}
	for _, c := range held {
		c.Close()
	}
	// More SMTP sessions on the shared port than the HTTP budget holds;
	// wait until 465's sessions are uncounted (a refusal is 421 there).
	testkit.WaitOutputs(t, "the 465 sessions to close", 20*time.Second, func() bool {
		return strings.Count(p.Log(), "msg=disconnect ") >= smtpCap-3
	}, p.proc)
	for i := range httpCap + 2 {
		if _, line := smtpBanner(t, shared, "smtp"); !strings.HasPrefix(line, "220 ") {
			t.Fatalf("shared-port SMTP session %d: %q\n%s", i, line, p.Log())
		}
	}
	if body, _ := curlDocument(t, shared, "--http1.1"); !strings.Contains(body, "<clientConfig") {
		t.Errorf("HTTP beside %d SMTP sessions on the shared port: %s", httpCap+2, body)
	}
	if !strings.Contains(p.Log(), `msg="HTTP connection refused" listener=tls+https`) {
		t.Errorf("the refusal was not logged:\n%s", p.Log())
	}
}

// TestDNSRecordsSharedE2E: dns-records names the shared port in a
// _submissions SRV record of lower priority than 465 and 587, and, with no
// https= listener, in the _autodiscover record (it serves the documents).
func TestDNSRecordsSharedE2E(t *testing.T) {
	t.Parallel()
	out, errOut, code := runPostern(t, "dns-records", "--hostname", "mail.example.org",
		"--listen", "starttls=:587", "--listen", "tls=:465", "--listen", "tls+https=:443",
		"--autoconfig-domain", "example.org")
	if code != 0 {
		t.Fatalf("dns-records exit %d: %s", code, errOut)
	}
	want := "_submissions._tcp.example.org. 3600 IN SRV 0 1 465 mail.example.org.\n" +
		"_submission._tcp.example.org. 3600 IN SRV 10 1 587 mail.example.org.\n" +
		"_submissions._tcp.example.org. 3600 IN SRV 20 1 443 mail.example.org.\n"
	if !strings.Contains(out, want) || !strings.Contains(out, "_autodiscover._tcp.example.org. 3600 IN SRV 0 1 443 mail.example.org.\n") {
		t.Errorf("want\n%s and the _autodiscover SRV on 443 in:\n%s", want, out)
	}
}

// TestAdvertisedPortsE2E: listeners bound on other ports than the public
// ones (ADDR@PORT, as behind NAT or a Docker port mapping) are advertised
// with the public ports everywhere: the Thunderbird document, the Apple
// profile and dns-records; they serve on the bound ones.
func TestAdvertisedPortsE2E(t *testing.T) {
	t.Parallel()
	shared := testkit.FreeAddr(t)
	p := startPosternAt(t, anyPort+"@587", anyPort+"@465", "127.0.0.1:1",
		"--hostname", "localhost", "--listen", "tls+https="+shared+"@443", "--autoconfig-domain", "example.test")
	waitListening(t, p.proc, shared)
	if _, line := smtpBanner(t, p.TLS, ""); !strings.HasPrefix(line, "220 ") {
		t.Fatalf("the bound implicit TLS port: %q", line)
	}
	body, _ := curlDocument(t, shared, "--http1.1")
	i465, i587, i443 := strings.Index(body, "<port>465</port>"), strings.Index(body, "<port>587</port>"), strings.Index(body, "<port>443</port>")
	if i465 < 0 || i587 < i465 || i443 < i587 || strings.Count(body, "<port>") != 3 {
		t.Errorf("Thunderbird document: want the public ports 465, 587, 443:\n%s", body)
	}
	code, out := httpsRequest(t, shared, "autoconfig.example.test", rawGet("autoconfig.example.test", "/apple/alice@example.test.mobileconfig"))
	if code != 200 || !strings.Contains(out, "<integer>465</integer>") {
		t.Errorf("Apple profile: status %d, want port 465:\n%s", code, out)
	}
	out, errOut, exit := runPostern(t, "dns-records", "--hostname", "mail.example.org",
		"--listen", "starttls=:10587@587", "--listen", "tls=:10465@465", "--listen", "tls+https=:10443@443",
		"--listen", "https=:8443@443", "--autoconfig-domain", "example.org")
	want := "_submissions._tcp.example.org. 3600 IN SRV 0 1 465 mail.example.org.\n" +
		"_submission._tcp.example.org. 3600 IN SRV 10 1 587 mail.example.org.\n" +
		"_submissions._tcp.example.org. 3600 IN SRV 20 1 443 mail.example.org.\n"
	if exit != 0 || !strings.Contains(out, want) || !strings.Contains(out, "_autodiscover._tcp.example.org. 3600 IN SRV 0 1 443 mail.example.org.\n") {
		t.Errorf("dns-records (exit %d, %s): want\n%s and _autodiscover on 443 in:\n%s", exit, errOut, want, out)
	}
	if _, errOut, exit := runPostern(t, "dns-records", "--hostname", "mail.example.org", "--listen", "tls=:465@0",
		"--autoconfig-domain", "example.org"); exit == 0 || !strings.Contains(errOut, "advertised port") {
		t.Errorf("an advertised port 0: exit %d, %s", exit, errOut)
	}
}

// TestSharedListenerACMEPebbleE2E: Pebble validates TLS-ALPN-01 on the
// shared listener (acme-tls/1 among smtp, h2 and http/1.1), and the
// certificate it issues is then served there to SMTP and HTTP clients.
func TestSharedListenerACMEPebbleE2E(t *testing.T) {
	t.Parallel()
	pebble := certstest.StartPebble(t, 24*time.Hour)
	const host, domain = "mail.postern.test", "postern.test"
	shared := "127.0.0.1:" + strconv.Itoa(pebble.TLSPort)
	p := startPosternBareAt(t, testkit.FreeAddr(t), testkit.FreeAddr(t), "127.0.0.1:1", []string{"SSL_CERT_FILE=" + pebble.HTTPSCertFile},
		"--hostname", host, "--listen", "tls+https="+shared,
		"--acme-domain", host, "--acme-email", "postmaster@postern.test", "--acme-cache", t.TempDir(),
		"--acme-directory", pebble.DirURL, "--acme-http", "none", "--autoconfig-domain", domain)
	for _, name := range []string{host, "autoconfig." + domain} {
		p.waitLog(t, `certs: ACME certificate ready" name=`+name, 90*time.Second)
	}
	for _, tc := range []struct{ name, alpn string }{{host, "smtp"}, {"autoconfig." + domain, "http/1.1"}} {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", shared,
			&tls.Config{ServerName: tc.name, RootCAs: pebble.Roots, NextProtos: []string{tc.alpn}})
		if err != nil {
			t.Fatalf("%s with ALPN %s: the certificate from Pebble is not served: %v", tc.name, tc.alpn, err)
		}
		if got := conn.ConnectionState().NegotiatedProtocol; got != tc.alpn {
			t.Errorf("%s: negotiated %q, want %q", tc.name, got, tc.alpn)
		}
		conn.Close()
	}
}

// TestSharedListenerProxyProtocolE2E: behind a load balancer in
// --proxy-protocol-from, the shared listener reads the PROXY header before
// the TLS handshake, and the SMTP session knows the client's own address;
// the balancer's connections are not held to one address's HTTP cap.
func TestSharedListenerProxyProtocolE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	p, shared := startShared(t, pf.Addr, "--proxy-protocol-from", "127.0.0.1/32", "--max-http-connections-per-ip", "1")
	// The balancer's address is many clients': a connection still
	// pending does not use up a per-address cap of 1 for the next.
	holdSilent(t, shared, 1)
	raw, err := net.DialTimeout("tcp", shared, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := io.WriteString(raw, "PROXY TCP4 192.0.2.77 127.0.0.1 40000 443\r\n"); err != nil {
		t.Fatal(err)
	}
	conn := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"smtp"}})
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := &client{t: t, conn: conn, br: bufio.NewReader(conn)}
	c.expect("", "220 localhost ")
	c.expect("EHLO client.test", "250")
	expectReply(t, "AUTH behind PROXY", c.auth(aliceLogin, alicePass), "235")
	expectQueued(t, "message behind PROXY", c.send(aliceLogin, "friend@example.test", "shared-proxy"))
	c.expect("QUIT", "221")
	findSubject(t, pf.WaitMessages(t, 1, 30*time.Second), "shared-proxy")
	testkit.WaitOutputs(t, "the auth ok line of 192.0.2.77", 10*time.Second, func() bool {
		return logCount(p, "auth ok", "192.0.2.77") == 1
	}, p.proc)
}

// BenchmarkSharedVs465 sends 4 KiB messages through the postern binary to
// Postfix over implicit TLS on the tls= listener (465) and on the shared
// listener with ALPN smtp, 10 connections at a time, in the same run, and
// reports messages per second and postern's CPU time per message:
//
//	go test ./cmd/postern -run '^$' -bench SharedVs465 -benchtime 2000x
func BenchmarkSharedVs465(b *testing.B) {
	pf := proxytest.StartPostfix(b, proxytest.PostfixOptions{})
	shared := testkit.FreeAddr(b)
	p := startPosternAt(b, anyPort, anyPort, pf.Addr, "--hostname", "localhost", "--listen", "tls+https="+shared,
		"--limit-messages", "*", "--limit-recipients", "*")
	waitListening(b, p.proc, shared)
	body := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789\r\n"), 4096/76)
	msg := append([]byte("Subject: bench\r\n\r\n"), body...)
	for _, tc := range []struct{ name, addr, alpn string }{{"tls-465", p.TLS, ""}, {"shared-alpn-smtp", shared, "smtp"}} {
		b.Run(tc.name, func(b *testing.B) {
			const conns = 10
			var wg sync.WaitGroup
			errs := make(chan error, conns)
			cpuBefore := cpuTime(b, p.proc.Cmd.Process.Pid)
			start := time.Now()
			for c := range conns {
				n := b.N / conns
				if c < b.N%conns {
					n++
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					conf := &tls.Config{InsecureSkipVerify: true}
					if tc.alpn != "" {
						conf.NextProtos = []string{tc.alpn}
					}
					cl, err := smtp.DialTLS(tc.addr, conf)
					if err != nil {
						errs <- err
						return
					}
					defer cl.Quit()
					if err := cl.Auth(sasl.NewPlainClient("", aliceLogin, alicePass)); err != nil {
						errs <- err
						return
					}
					for range n {
						if err := cl.SendMail(aliceLogin, []string{"bench@example.test"}, bytes.NewReader(msg)); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			elapsed := time.Since(start)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(float64((cpuTime(b, p.proc.Cmd.Process.Pid)-cpuBefore).Microseconds())/float64(b.N), "cpu-us/msg")
		})
	}
}
