package main

// End-to-end tests of the HTTP listeners' own connection budget (issue 18,
// hole 7): idle connections to the https= port were never capped, and
// 22,000 of them took every descriptor, so 587 failed with "accept4: too
// many open files". Here the binary runs with an open files limit of 256:
// the over-cap connections are closed at accept (no TLS handshake), per
// address and in total, SMTP keeps working through a flood larger than
// the limit, and the start warns when the caps exceed the limit.

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/cmd/postern/internal/serve"
	"github.com/postern/postern/internal/testkit"
	"github.com/postern/postern/proxy"
	"github.com/postern/postern/proxy/listen"
	"github.com/postern/postern/proxy/proxytest"
)

// startPosternNofile is startPosternAt with the binary's open files limit,
// soft and hard, set to nofile by the shell that execs it (Go's runtime
// cannot raise a hard limit).
func startPosternNofile(t *testing.T, nofile int, starttls, implicitTLS, upstream string, extra ...string) *postern {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := writeTestCert(t, dir)
	p := &postern{StartTLS: starttls, TLS: implicitTLS, Dir: dir, UsersFile: filepath.Join(dir, "users")}
	writeFile(t, p.UsersFile, usersFileContent(t))
	args := append([]string{"serve", "--hostname", "submission.test",
		"--listen", "starttls=" + p.StartTLS, "--listen", "tls=" + p.TLS,
		"--upstream", upstream, "--users", p.UsersFile,
		"--tls-cert", certFile, "--tls-key", keyFile, "--shutdown-timeout", "5s",
	}, extra...)
	// exec: the process the test stops by PID is postern itself.
	cmd := exec.Command("sh", append([]string{"-c", `ulimit -n "$0" && exec "$@"`, strconv.Itoa(nofile), posternBin}, args...)...)
	cmd.Env = cleanEnv()
	p.run(t, cmd)
	return p
}

// httpsHeld opens a connection from localIP, fetches a document over it
// and keeps it open (keep-alive, idle) until the test ends or it is closed.
func httpsHeld(t *testing.T, addr, localIP string) net.Conn {
	t.Helper()
	conn := limDial(t, addr, localIP, "")
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, ServerName: "autoconfig.example.test"})
	_ = tc.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(tc, "GET /mail/config-v1.1.xml HTTP/1.1\r\nHost: autoconfig.example.test\r\n\r\n"); err != nil {
		t.Fatalf("request from %s: %v", localIP, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		t.Fatalf("reply to %s: %v", localIP, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reply to %s: status %d", localIP, resp.StatusCode)
	}
	_ = tc.SetDeadline(time.Time{})
	return tc
}

// httpsRefused checks that a connection from localIP is closed by the
// server without a TLS handshake: the ClientHello gets no ServerHello, the
// connection ends (not a timeout).
func httpsRefused(t *testing.T, addr, localIP string) {
	t.Helper()
	tc := tls.Client(limDial(t, addr, localIP, ""), &tls.Config{InsecureSkipVerify: true, ServerName: "autoconfig.example.test"})
	_ = tc.SetDeadline(time.Now().Add(15 * time.Second))
	err := tc.Handshake()
	var ne net.Error
	switch {
	case err == nil:
		t.Fatalf("connection from %s: the TLS handshake completed over the cap", localIP)
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatalf("connection from %s: not closed within 15 s: %v", localIP, err)
	}
}

// TestHTTPConnCapsE2E: with --max-http-connections 20 and
// --max-http-connections-per-ip 8, the ninth connection from one address
// and the 21st in all are closed at accept, before any TLS handshake, and
// counted; a flood of 300 more idle connections — more than the binary's
// open files limit of 256 — is closed as fast as it comes, while a real
// SMTP client logs in and sends on the STARTTLS port; closed connections
// give their slots back.
func TestHTTPConnCapsE2E(t *testing.T) {
	t.Parallel()
	up := proxytest.StartUpstream(t, proxytest.UpstreamOptions{})
	// The documents name the SMTP ports: they must be known before the start.
	p := startPosternNofile(t, 256, testkit.FreeAddr(t), testkit.FreeAddr(t), up.Addr, autoconfigFlags(anyPort,
		"--max-connections", "50", "--max-http-connections", "20", "--max-http-connections-per-ip", "8",
		"--metrics", anyPort)...)
	httpsAddr := httpsListenAddr(t, p)
	metrics := "http://" + p.metricsAddr(t) + "/metrics"
	refused := func(reason string) string {
		return fmt.Sprintf(`postern_http_connections_refused_total{listener="https",reason=%q}`, reason)
	}

	var held []net.Conn
	for i := 0; i < 8; i++ {
		held = append(held, httpsHeld(t, httpsAddr, "127.0.0.2"))
	}
	httpsRefused(t, httpsAddr, "127.0.0.2")
	limMetric(t, metrics, refused("per_ip"), 1)
	for i := 0; i < 8; i++ {
		held = append(held, httpsHeld(t, httpsAddr, "127.0.0.3"))
	}
	for i := 0; i < 4; i++ {
		held = append(held, httpsHeld(t, httpsAddr, "127.0.0.4"))
	}
	limMetric(t, metrics, "postern_http_connections", 20)
	httpsRefused(t, httpsAddr, "127.0.0.4")
	httpsRefused(t, httpsAddr, "127.0.0.5")
	limMetric(t, metrics, refused("global"), 2)

	// The flood: idle connections that say nothing, all held open by
	// this side. Without the cap they took the descriptors 587 needs.
	const flood = 300
	var floodConns []net.Conn
	for i := 0; i < flood; i++ {
		floodConns = append(floodConns, limDial(t, httpsAddr, "127.0.0.6", ""))
	}
	out, code := swaks(t, p.swaksAuth(aliceLogin, alicePass, "--from", aliceLogin, "--to", "friend@example.test",
		"--header", "Subject: during the HTTPS flood")...)
	if code != 0 {
		t.Fatalf("SMTP during the HTTPS flood: exit %d\n%s\npostern:\n%s", code, out, p.Log())
	}
	up.WaitMessages(t, 1, 30*time.Second)
	for i, c := range floodConns {
		if got := limUntilClosed(t, c); got != "" {
			t.Fatalf("flood connection %d: the server sent %q", i, got)
		}
	}
	limMetric(t, metrics, refused("global"), 2+flood)
	limMetric(t, metrics, "postern_http_connections", 20)
	if n := strings.Count(p.Log(), `msg="HTTP connection refused"`); n < 1 || n > 3 {
		t.Errorf("%d refusal lines for %d refusals, want one a minute", n, 3+flood)
	}

	// Closed connections give their slots back.
	for _, c := range held {
		c.Close()
	}
	limMetric(t, metrics, "postern_http_connections", 0)
	for i := 0; i < 8; i++ {
		httpsHeld(t, httpsAddr, "127.0.0.2")
	}
	httpsRefused(t, httpsAddr, "127.0.0.2")
}

// TestFileLimitWarningE2E: started with an open files limit below what the
// connection caps may need, serve warns and names the figures; with a
// limit that covers them it says nothing.
func TestFileLimitWarningE2E(t *testing.T) {
	t.Parallel()
	up := proxytest.StartUpstream(t, proxytest.UpstreamOptions{})
	const warning = `msg="the connection caps may need more file descriptors than the open files limit allows`
	p := startPosternNofile(t, 200, anyPort, anyPort, up.Addr)
	need := 2*listen.DefaultMaxConnections + listen.DefaultMaxHTTPConnections + listen.MetricsMaxConnections +
		proxy.DefaultUpstreamPool + serve.FileHeadroom
	p.waitLog(t, warning, 10*time.Second)
	for _, want := range []string{"open_files_limit=200", "need=" + strconv.Itoa(need),
		"max_connections=" + strconv.Itoa(listen.DefaultMaxConnections),
		"max_http_connections=" + strconv.Itoa(listen.DefaultMaxHTTPConnections)} {
		if !strings.Contains(p.Log(), want) {
			t.Errorf("the warning does not name %s:\n%s", want, p.Log())
		}
	}
	// 2 × 1000 + 256 + 32 + 4 + 256 = 2548 descriptors fit in 4096. The
	// check runs before the listeners are logged, so it is done by now.
	quiet := startPosternNofile(t, 4096, anyPort, anyPort, up.Addr, "--max-connections", "1000")
	if strings.Contains(quiet.Log(), warning) {
		t.Errorf("warned with a limit that covers the caps:\n%s", quiet.Log())
	}
}

// TestMetricsPerIPCapE2E: one client holding idle connections to --metrics
// (no request, each held until the header timeout, then opened again)
// took the listener's whole budget, so /healthz failed and the kubelet
// restarted the pod. With a cap per address, the probe from another
// address is still answered and the extra connections are counted.
func TestMetricsPerIPCapE2E(t *testing.T) {
	t.Parallel()
	up := proxytest.StartUpstream(t, proxytest.UpstreamOptions{})
	p := startPostern(t, up.Addr, "--metrics", anyPort)
	addr := p.metricsAddr(t)
	for i := 0; i < listen.MetricsMaxConnections; i++ {
		limDial(t, addr, "127.0.0.2", "")
	}
	// The probe comes from another address (the kubelet's).
	out, err := exec.Command(posternBin, "healthcheck", "--url", "http://"+addr+"/healthz").CombinedOutput()
	if err != nil {
		t.Fatalf("healthcheck while one client holds %d idle connections: %v\n%s", listen.MetricsMaxConnections, err, out)
	}
	limMetric(t, "http://"+addr+"/metrics", `postern_http_connections_refused_total{listener="metrics",reason="per_ip"}`,
		listen.MetricsMaxConnections-listen.MetricsMaxConnectionsPerIP)
}
