package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postern/postern/certs/certstest"
	"github.com/postern/postern/internal/testkit"
	"github.com/postern/postern/proxy/proxytest"
)

// End-to-end tests of the certificate sources through the built binary:
// ACME against Pebble, the certbot live/ directory picked by SNI with a
// reload under an open session, the TLS policy seen by openssl, and
// check-config's certificate listing.

// startPosternBare runs `postern serve` against upstream with the test users
// and the two listeners, but, unlike startPostern, no certificate and no
// --hostname: flags must bring them. env is added to the environment.
func startPosternBare(t testing.TB, upstream string, env []string, flags ...string) *postern {
	t.Helper()
	return startPosternBareAt(t, anyPort, anyPort, upstream, env, flags...)
}

// startPosternBareAt is startPosternBare with the STARTTLS and implicit TLS
// listen addresses chosen by the caller.
func startPosternBareAt(t testing.TB, starttls, implicitTLS, upstream string, env []string, flags ...string) *postern {
	t.Helper()
	dir := t.TempDir()
	p := &postern{
		StartTLS: starttls, TLS: implicitTLS, Dir: dir,
		UsersFile: filepath.Join(dir, "users"),
	}
	writeFile(t, p.UsersFile, usersFileContent(t))
	args := append([]string{"serve",
		"--listen", "starttls=" + p.StartTLS, "--listen", "tls=" + p.TLS,
		"--upstream", upstream,
		"--users", p.UsersFile,
		"--shutdown-timeout", "5s",
	}, flags...)
	cmd := exec.Command(posternBin, args...)
	cmd.Env = append(cleanEnv(), env...)
	p.run(t, cmd)
	return p
}

// waitLog waits until the binary logged substr, failing if it exits first.
func (p *postern) waitLog(t testing.TB, substr string, timeout time.Duration) {
	t.Helper()
	p.proc.WaitOutput(t, strconv.Quote(substr)+" in postern's log", timeout, func(out string) bool {
		return strings.Contains(out, substr)
	})
}

// runPostern runs the binary to completion and returns stdout, stderr and
// the exit code.
func runPostern(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, posternBin, args...)
	cmd.Env = cleanEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running postern %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// dialStartTLS connects to addr, issues STARTTLS and completes the
// handshake with conf. go-smtp's DialStartTLS leaves the handshake to the
// first write, so an EHLO is sent here to make a bad certificate fail now.
func dialStartTLS(addr string, conf *tls.Config) (*smtp.Client, tls.ConnectionState, error) {
	c, err := smtp.DialStartTLS(addr, conf)
	if err != nil {
		return nil, tls.ConnectionState{}, err
	}
	if err := c.Hello("client.test"); err != nil {
		c.Close()
		return nil, tls.ConnectionState{}, fmt.Errorf("EHLO after STARTTLS (TLS handshake): %w", err)
	}
	st, ok := c.TLSConnectionState()
	if !ok || !st.HandshakeComplete || len(st.PeerCertificates) == 0 {
		c.Close()
		return nil, st, errors.New("STARTTLS: no completed handshake")
	}
	return c, st, nil
}

// sendVia submits one message as alice over c (already connected, TLS up)
// and returns the server's final reply text.
func sendVia(t testing.TB, c *smtp.Client, subject string) string {
	t.Helper()
	if err := c.Auth(sasl.NewPlainClient("", aliceLogin, alicePass)); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	if err := c.Mail(aliceLogin, nil); err != nil {
		t.Fatalf("MAIL: %v", err)
	}
	if err := c.Rcpt("friend@example.test", nil); err != nil {
		t.Fatalf("RCPT: %v", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	fmt.Fprintf(w, "From: %s\r\nTo: friend@example.test\r\nSubject: %s\r\n\r\nbody\r\n", aliceLogin, subject)
	resp, err := w.CloseWithResponse()
	if err != nil {
		t.Fatalf("end of DATA: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Errorf("QUIT: %v", err)
	}
	return resp.StatusText
}

// TestCertsACMEPebbleE2E: `postern serve` with --acme-domain and no static
// pair gets a certificate from a real ACME CA (Pebble) over HTTP-01 on
// --acme-http; clients that trust only Pebble's root then verify the chain
// for the name on the STARTTLS and the implicit TLS listener and submit
// through to Postfix; a hello without SNI gets --hostname's certificate;
// check-config reads the certificate from the cache; and, Pebble issuing
// 30-second certificates, the binary renews by itself.
func TestCertsACMEPebbleE2E(t *testing.T) {
	t.Parallel()
	pebble := certstest.StartPebble(t, 30*time.Second)
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	const name = "mail.postern.test"
	cache := t.TempDir()
	acmeFlags := []string{
		"--hostname", name,
		"--acme-domain", name,
		"--acme-email", "postmaster@postern.test",
		"--acme-cache", cache,
		"--acme-directory", pebble.DirURL,
		"--acme-http", "127.0.0.1:" + strconv.Itoa(pebble.HTTPPort),
	}
	// Go's system pool on Linux reads SSL_CERT_FILE: that is how the
	// binary, which has no test hook, trusts Pebble's HTTPS endpoint.
	p := startPosternBare(t, pf.Addr, []string{"SSL_CERT_FILE=" + pebble.HTTPSCertFile}, acmeFlags...)
	p.waitLog(t, "certs: ACME certificate ready", 90*time.Second)
	if !strings.Contains(pebble.Log(), "Attempting to validate w/ HTTP: http://"+name+":"+strconv.Itoa(pebble.HTTPPort)) {
		t.Errorf("Pebble did not validate over HTTP-01 on --acme-http:\n%s", pebble.Log())
	}

	verified := &tls.Config{ServerName: name, RootCAs: pebble.Roots}
	var leaf *x509.Certificate
	t.Run("STARTTLS", func(t *testing.T) {
		c, st, err := dialStartTLS(p.StartTLS, verified.Clone())
		if err != nil {
			t.Fatalf("STARTTLS verifying %s against Pebble's root: %v", name, err)
		}
		defer c.Close()
		leaf = st.PeerCertificates[0]
		if k, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
			t.Errorf("leaf key %T, want ECDSA P-256", leaf.PublicKey)
		}
		if !strings.Contains(leaf.Issuer.CommonName, "Pebble") {
			t.Errorf("issuer %q, want Pebble's", leaf.Issuer)
		}
		if reply := sendVia(t, c, "acme-starttls"); !strings.Contains(reply, "queued as") {
			t.Errorf("final reply %q, want Postfix's queue id", reply)
		}
	})
	t.Run("implicit TLS", func(t *testing.T) {
		c, err := smtp.DialTLS(p.TLS, verified.Clone())
		if err != nil {
			t.Fatalf("implicit TLS verifying %s against Pebble's root: %v", name, err)
		}
		defer c.Close()
		if reply := sendVia(t, c, "acme-implicit"); !strings.Contains(reply, "queued as") {
			t.Errorf("final reply %q, want Postfix's queue id", reply)
		}
	})
	msgs := pf.WaitMessages(t, 2, 30*time.Second)
	findSubject(t, msgs, "acme-starttls")
	findSubject(t, msgs, "acme-implicit")
	if leaf == nil {
		t.FailNow()
	}

	t.Run("no SNI gets hostname's certificate", func(t *testing.T) {
		// crypto/tls sends no SNI when ServerName is an IP address; verify
		// the chain by hand for --hostname.
		conn, err := tls.Dial("tcp", p.TLS, &tls.Config{ServerName: "127.0.0.1", InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("handshake without SNI: %v", err)
		}
		defer conn.Close()
		certsSeen := conn.ConnectionState().PeerCertificates
		inter := x509.NewCertPool()
		for _, c := range certsSeen[1:] {
			inter.AddCert(c)
		}
		if _, err := certsSeen[0].Verify(x509.VerifyOptions{DNSName: name, Roots: pebble.Roots, Intermediates: inter}); err != nil {
			t.Errorf("no-SNI certificate does not verify for %s: %v", name, err)
		}
	})

	t.Run("check-config reads the ACME cache", func(t *testing.T) {
		out, errOut, code := runPostern(t, append([]string{"check-config",
			"--upstream", pf.Addr, "--users", p.UsersFile}, acmeFlags...)...)
		if code != 0 {
			t.Fatalf("check-config exit %d:\n%s%s", code, out, errOut)
		}
		if !regexp.MustCompile(`certificate acme: names=\[` + regexp.QuoteMeta(name) + `\] issuer="[^"]*Pebble[^"]*" expires=\d{4}-\d\d-\d\d`).MatchString(out) {
			t.Errorf("check-config does not list the ACME certificate:\n%s", out)
		}
	})

	t.Run("renewal", func(t *testing.T) {
		// autocert renews at two thirds of the lifetime: about 20 s.
		deadline := time.Now().Add(pebble.Validity + 20*time.Second)
		for {
			conn, err := tls.Dial("tcp", p.TLS, verified.Clone())
			if err == nil {
				cur := conn.ConnectionState().PeerCertificates[0]
				conn.Close()
				if cur.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
					t.Logf("renewed: serial %v (not after %v) replaced %v (not after %v)",
						cur.SerialNumber, cur.NotAfter, leaf.SerialNumber, leaf.NotAfter)
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("certificate not renewed within %v (last error %v)", pebble.Validity+20*time.Second, err)
			}
			time.Sleep(time.Second)
		}
	})
}

// servedCert is what `openssl s_client` reported for one handshake.
type servedCert struct {
	fingerprint string // SHA-256 of the leaf, hex
	subject     string // "CN=..." as openssl prints it, spaces removed
	verified    bool   // "Verify return code: 0 (ok)"
	out         string
}

var subjectRE = regexp.MustCompile(`(?m)^subject=(.*)$`)

// opensslStartTLS runs `openssl s_client -starttls smtp` against addr;
// sni "" sends no SNI (-noservername), otherwise -servername sni and the
// chain is verified for sni against caFile. It fails the test if the
// handshake does not complete.
func opensslStartTLS(t testing.TB, addr, sni, caFile string) servedCert {
	t.Helper()
	args := []string{"-starttls", "smtp", "-showcerts", "-CAfile", caFile}
	if sni == "" {
		args = append(args, "-noservername")
	} else {
		args = append(args, "-servername", sni, "-verify_hostname", sni)
	}
	out, ok := sClient(t, addr, args...)
	if !ok {
		t.Fatalf("openssl s_client %v: handshake failed:\n%s", args, out)
	}
	b, _ := pem.Decode([]byte(out[strings.Index(out, "-----BEGIN CERTIFICATE-----"):]))
	if b == nil {
		t.Fatalf("no certificate in openssl's output:\n%s", out)
	}
	sc := servedCert{fingerprint: certstest.Fingerprint(b.Bytes), out: out,
		verified: strings.Contains(out, "Verify return code: 0 (ok)")}
	if m := subjectRE.FindStringSubmatch(out); m != nil {
		sc.subject = strings.ReplaceAll(m[1], " ", "")
	}
	return sc
}

// sClient runs `openssl s_client -connect addr args...` with an empty stdin
// (it quits right after the handshake) and reports whether a handshake
// completed.
func sClient(t testing.TB, addr string, args ...string) (string, bool) {
	t.Helper()
	openssl := testkit.RequireOpenSSL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, openssl, append([]string{"s_client", "-connect", addr}, args...)...)
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("openssl s_client %v timed out:\n%s", args, out)
	}
	ok := err == nil && strings.Contains(string(out), "Cipher is ") && !strings.Contains(string(out), "Cipher is (NONE)")
	return string(out), ok
}

// sniSetup is a certbot-style live/ directory with three hosts and a
// wildcard lineage, plus a static default pair, all from one test CA.
type sniSetup struct {
	ca                *certstest.CA
	le                *certstest.LetsEncryptDir
	caFile            string
	certFile, keyFile string            // the static default pair
	fp                map[string]string // lineage (or "default") → leaf fingerprint
}

func newSNISetup(t testing.TB) *sniSetup {
	t.Helper()
	s := &sniSetup{ca: certstest.NewCA(t), fp: map[string]string{}}
	s.le = certstest.NewLetsEncryptDir(t, s.ca)
	s.fp["a.example.test"] = certstest.LeafFingerprint(t, s.le.Put("a.example.test", "a.example.test"))
	s.fp["b.example.test"] = certstest.LeafFingerprint(t, s.le.Put("b.example.test", "b.example.test", "www.b.example.test"))
	s.fp["c.example.test"] = certstest.LeafFingerprint(t, s.le.Put("c.example.test", "c.example.test"))
	// certbot names a wildcard lineage after the domain without "*.".
	s.fp["dept.example.test"] = certstest.LeafFingerprint(t, s.le.Put("dept.example.test", "*.dept.example.test"))
	dir := t.TempDir()
	s.caFile = filepath.Join(dir, "ca.pem")
	certstest.WriteFile(t, s.caFile, s.ca.PEM())
	chain, key := s.ca.Issue(t, 90*24*time.Hour, "default.example.test")
	s.certFile, s.keyFile = filepath.Join(dir, "default.crt"), filepath.Join(dir, "default.key")
	certstest.WriteFile(t, s.certFile, chain)
	certstest.WriteFile(t, s.keyFile, key)
	s.fp["default"] = certstest.LeafFingerprint(t, chain)
	return s
}

func (s *sniSetup) flags() []string {
	return []string{"--hostname", "default.example.test",
		"--tls-cert", s.certFile, "--tls-key", s.keyFile, "--tls-sni-dir", s.le.Live()}
}

// leafOverGo completes STARTTLS with Go's client (no verification) and
// returns the served leaf's fingerprint; for polling, where forking
// openssl every few milliseconds would be wasteful.
func leafOverGo(t testing.TB, addr, sni string) string {
	t.Helper()
	c, st, err := dialStartTLS(addr, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("STARTTLS for %s: %v", sni, err)
	}
	defer c.Close()
	return certstest.Fingerprint(st.PeerCertificates[0].Raw)
}

// TestCertsSNIDirectoryE2E: with --tls-sni-dir pointing at a certbot live/
// directory, openssl gets each host's certificate (verified for the name),
// the wildcard covers one label, no SNI and an unknown name get the static
// pair. A renewal done certbot-style (new archive files, symlink swap) is
// served after SIGHUP while a session opened before it, stopped in the
// middle of DATA, still completes with 250 and reaches Postfix; a renewal
// without SIGHUP is picked up by the file watcher.
func TestCertsSNIDirectoryE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	s := newSNISetup(t)
	p := startPosternBare(t, pf.Addr, nil, s.flags()...)

	cases := []struct{ sni, lineage, subject string }{
		{"a.example.test", "a.example.test", "CN=a.example.test"},
		{"b.example.test", "b.example.test", "CN=b.example.test"},
		{"www.b.example.test", "b.example.test", "CN=b.example.test"},
		{"c.example.test", "c.example.test", "CN=c.example.test"},
		{"x.dept.example.test", "dept.example.test", "CN=*.dept.example.test"},
		{"y.x.dept.example.test", "default", "CN=default.example.test"}, // a wildcard covers one label
		{"unknown.example.test", "default", "CN=default.example.test"},
		{"", "default", "CN=default.example.test"},
	}
	for _, tc := range cases {
		got := opensslStartTLS(t, p.StartTLS, tc.sni, s.caFile)
		if got.fingerprint != s.fp[tc.lineage] || got.subject != tc.subject {
			t.Errorf("SNI %q: served %s (%s), want %s's (%s)", tc.sni, got.subject, got.fingerprint, tc.lineage, tc.subject)
		}
		if tc.lineage != "default" && !got.verified {
			t.Errorf("SNI %q: chain not verified for the name:\n%s", tc.sni, got.out)
		}
	}

	// A session opened before the renewal: TLS verified for b, AUTH,
	// MAIL, RCPT, and half of the message.
	conn, err := net.Dial("tcp", p.StartTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := smtpText(t, conn)
	c.expect("220")
	c.send("EHLO client.test")
	c.expect("250")
	c.send("STARTTLS")
	c.expect("220")
	tc := tls.Client(conn, &tls.Config{ServerName: "b.example.test", RootCAs: s.ca.Pool})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if got := certstest.Fingerprint(tc.ConnectionState().PeerCertificates[0].Raw); got != s.fp["b.example.test"] {
		t.Fatal("open session did not get b's certificate")
	}
	c = smtpText(t, tc)
	c.send("EHLO client.test")
	c.expect("250")
	c.send("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+aliceLogin+"\x00"+alicePass)))
	c.expect("235")
	c.send("MAIL FROM:<" + aliceLogin + ">")
	c.expect("250")
	c.send("RCPT TO:<friend@example.test>")
	c.expect("250")
	c.send("DATA")
	c.expect("354")
	c.raw("From: " + aliceLogin + "\r\nTo: friend@example.test\r\nSubject: sni-open-session\r\n\r\nfirst half, before the swap\r\n")

	// certbot renew: new archive files, live/ symlinks swapped.
	newB := certstest.LeafFingerprint(t, s.le.Put("b.example.test", "b.example.test", "www.b.example.test"))
	hup(t, p)
	if !strings.Contains(p.Log(), "msg=reloaded ok=true") {
		t.Errorf("reload not clean:\n%s", p.Log())
	}
	if got := opensslStartTLS(t, p.StartTLS, "b.example.test", s.caFile); got.fingerprint != newB || !got.verified {
		t.Errorf("after SIGHUP: b served %s (verified %v), want the renewed %s", got.fingerprint, got.verified, newB)
	}
	if got := opensslStartTLS(t, p.StartTLS, "a.example.test", s.caFile); got.fingerprint != s.fp["a.example.test"] {
		t.Errorf("after SIGHUP: a changed")
	}

	// The open session finishes its message after the swap.
	c.raw("second half, after the swap\r\n.\r\n")
	reply := c.expect("250")
	if !strings.Contains(reply, "queued as") {
		t.Errorf("final reply %q, want Postfix's queue id", reply)
	}
	c.send("QUIT")
	c.expect("221")
	m := findSubject(t, pf.WaitMessages(t, 1, 30*time.Second), "sni-open-session")
	if !bytes.Contains(m.Data, []byte("first half, before the swap\r\nsecond half, after the swap\r\n")) {
		t.Errorf("delivered body incomplete:\n%s", m.Data)
	}

	// A renewal without SIGHUP: the watcher (5 s poll) picks it up.
	newC := certstest.LeafFingerprint(t, s.le.Put("c.example.test", "c.example.test"))
	deadline := time.Now().Add(20 * time.Second)
	for leafOverGo(t, p.StartTLS, "c.example.test") != newC {
		if time.Now().After(deadline) {
			t.Fatalf("renewal of c not picked up without SIGHUP within 20 s:\n%s", p.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := opensslStartTLS(t, p.StartTLS, "c.example.test", s.caFile); got.fingerprint != newC || !got.verified {
		t.Errorf("after the watcher's reload: c served %s (verified %v), want %s", got.fingerprint, got.verified, newC)
	}
}

// TestCertsTLSPolicyE2E: openssl, allowed everything on its side
// (@SECLEVEL=0), is refused TLS 1.1 and TLS 1.0 and the non-AEAD
// AES128-SHA (and a CBC ECDHE suite) by the binary, with an alert from the
// server, on the STARTTLS and on the implicit TLS listener; TLS 1.2 with
// an AEAD suite and TLS 1.3 are accepted.
func TestCertsTLSPolicyE2E(t *testing.T) {
	t.Parallel()
	testkit.RequireOpenSSL(t)
	// No upstream is needed for handshakes: nothing listens there.
	p := startPostern(t, "127.0.0.1:1")
	cases := []struct {
		name string
		args []string
		ok   bool
	}{
		{"TLS 1.1", []string{"-tls1_1", "-cipher", "ALL:@SECLEVEL=0"}, false},
		{"TLS 1.0", []string{"-tls1", "-cipher", "ALL:@SECLEVEL=0"}, false},
		{"TLS 1.2 AES128-SHA", []string{"-tls1_2", "-cipher", "AES128-SHA:@SECLEVEL=0"}, false},
		{"TLS 1.2 ECDHE-ECDSA-AES128-SHA (CBC)", []string{"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0"}, false},
		{"TLS 1.2 ECDHE-ECDSA-AES128-GCM-SHA256", []string{"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"}, true},
		{"TLS 1.3", []string{"-tls1_3"}, true},
	}
	for _, listener := range []struct{ name, addr string }{{"starttls", p.StartTLS}, {"tls", p.TLS}} {
		for _, tc := range cases {
			t.Run(listener.name+" "+tc.name, func(t *testing.T) {
				args := append([]string{"-servername", "localhost"}, tc.args...)
				if listener.name == "starttls" {
					args = append([]string{"-starttls", "smtp"}, args...)
				}
				out, ok := sClient(t, listener.addr, args...)
				if ok != tc.ok {
					t.Fatalf("handshake completed = %v, want %v:\n%s", ok, tc.ok, out)
				}
				// The refusal must be the server's (an alert), not
				// the client declining to offer what it was told to.
				if !tc.ok && !strings.Contains(out, "alert") {
					t.Errorf("no alert from the server:\n%s", out)
				}
			})
		}
	}
}

// TestCertsCheckConfigE2E: `postern check-config` lists every certificate
// it would serve from the static pair and the SNI directory (source, names,
// issuer, expiry), warns for the one that expires within 14 days and exits
// 0; a renewal whose key does not match its certificate, in the SNI
// directory or as the static pair, makes it exit non-zero naming the files.
func TestCertsCheckConfigE2E(t *testing.T) {
	t.Parallel()
	s := newSNISetup(t)
	// c is renewed with a 3-day certificate: within the 14-day warning.
	shortChain, shortKey := s.ca.Issue(t, 3*24*time.Hour, "c.example.test")
	s.le.PutPair("c.example.test", shortChain, shortKey)
	users := filepath.Join(t.TempDir(), "users")
	writeFile(t, users, usersFileContent(t))
	base := []string{"check-config", "--upstream", "127.0.0.1:25", "--users", users}

	out, errOut, code := runPostern(t, append(base, s.flags()...)...)
	if code != 0 {
		t.Fatalf("check-config exit %d:\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	issuer := regexp.QuoteMeta(`issuer="CN=` + certstest.CACommonName + `"`)
	date := func(d time.Duration) string { return regexp.QuoteMeta(time.Now().Add(d).UTC().Format("2006-01-02")) }
	// ±1 day around the expected expiry: the test may straddle midnight,
	// and the binary prints the date in the certificate's time zone.
	around := func(d time.Duration) string {
		return "(" + date(d-24*time.Hour) + "|" + date(d) + "|" + date(d+24*time.Hour) + ")"
	}
	want := []struct{ line, warning string }{
		{`certificate static: names=\[default\.example\.test\] ` + issuer + ` expires=` + around(90*24*time.Hour), ""},
		{`certificate sni-dir: names=\[a\.example\.test\] ` + issuer + ` expires=` + around(90*24*time.Hour), ""},
		{`certificate sni-dir: names=\[b\.example\.test www\.b\.example\.test\] ` + issuer + ` expires=` + around(90*24*time.Hour), ""},
		{`certificate sni-dir: names=\[c\.example\.test\] ` + issuer + ` expires=` + around(3*24*time.Hour), `  WARNING: expires in 2 days`},
		{`certificate sni-dir: names=\[\*\.dept\.example\.test\] ` + issuer + ` expires=` + around(90*24*time.Hour), ""},
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	for _, w := range want {
		re := regexp.MustCompile("^" + w.line + "$")
		i := slices.IndexFunc(lines, re.MatchString)
		if i < 0 {
			t.Errorf("check-config does not list %s:\n%s", w.line, out)
			continue
		}
		next := ""
		if i+1 < len(lines) {
			next = lines[i+1]
		}
		if w.warning != "" && !strings.HasPrefix(next, w.warning) {
			t.Errorf("no warning %q after %q:\n%s", w.warning, lines[i], out)
		}
		if w.warning == "" && strings.Contains(next, "WARNING") {
			t.Errorf("unexpected warning after %q:\n%s", lines[i], out)
		}
	}
	if n := strings.Count(out, "certificate "); n != len(want) {
		t.Errorf("check-config lists %d certificates, want %d:\n%s", n, len(want), out)
	}
	if !strings.Contains(out, "configuration OK") {
		t.Errorf("no \"configuration OK\":\n%s", out)
	}

	t.Run("mismatched key in the SNI directory", func(t *testing.T) {
		_, otherKey := s.ca.Issue(t, 90*24*time.Hour, "a.example.test")
		chainA, _ := s.ca.Issue(t, 90*24*time.Hour, "a.example.test")
		s.le.PutPair("a.example.test", chainA, otherKey) // a broken renewal
		out, errOut, code := runPostern(t, append(base, s.flags()...)...)
		if code == 0 {
			t.Fatalf("check-config exit 0 with a mismatched key:\n%s%s", out, errOut)
		}
		if !strings.Contains(errOut, s.le.Chain("a.example.test")) || !strings.Contains(errOut, s.le.Key("a.example.test")) ||
			!strings.Contains(errOut, "does not match") {
			t.Errorf("error does not name the files and the mismatch:\n%s", errOut)
		}
	})
	t.Run("mismatched static pair", func(t *testing.T) {
		_, otherKey := s.ca.Issue(t, 90*24*time.Hour, "default.example.test")
		badKey := filepath.Join(t.TempDir(), "other.key")
		certstest.WriteFile(t, badKey, otherKey)
		out, errOut, code := runPostern(t, append(base, "--hostname", "default.example.test",
			"--tls-cert", s.certFile, "--tls-key", badKey)...)
		if code == 0 {
			t.Fatalf("check-config exit 0 with a mismatched key:\n%s%s", out, errOut)
		}
		if !strings.Contains(errOut, s.certFile) || !strings.Contains(errOut, badKey) || !strings.Contains(errOut, "does not match") {
			t.Errorf("error does not name the files and the mismatch:\n%s", errOut)
		}
	})
}
