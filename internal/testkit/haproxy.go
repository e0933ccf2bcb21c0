package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// HAProxyOptions tunes StartHAProxy.
type HAProxyOptions struct {
	// HealthCheck checks the balanced servers (inter 300ms fall 1 rise 2)
	// and sends a connection a server refuses to another (retries 3,
	// option redispatch): for tests that stop a backend behind it.
	HealthCheck bool
}

// HAProxy is a haproxy (mode tcp) a test started in front of backends,
// telling each the client's address in a PROXY protocol v2 header
// (send-proxy-v2), stopped by PID at cleanup.
type HAProxy struct {
	Balanced string   // frontend balancing round robin over all the backends
	Only     []string // Only[i] is a frontend reaching backends[i] alone
	Config   string   // the configuration it runs
	Proc     *Process
}

// StartHAProxy starts haproxy in the foreground (-db) in front of backends
// (host:port), its frontends on free loopback ports, and returns once
// every frontend accepts connections. The configuration is checked first
// (haproxy -c), so a mistake in it fails the test with haproxy's words.
func StartHAProxy(t testing.TB, backends []string, opts HAProxyOptions) *HAProxy {
	t.Helper()
	bin := RequireTool(t, "haproxy")
	h := &HAProxy{Balanced: FreeAddr(t)}
	for range backends {
		h.Only = append(h.Only, FreeAddr(t))
	}
	h.Config = haproxyConfig(h, backends, opts)
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(h.Config), 0o600); err != nil {
		t.Fatalf("writing the haproxy configuration: %v", err)
	}
	if out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s\n%s", err, out, h.Config)
	}
	h.Proc = StartCmd(t, exec.Command(bin, "-f", path, "-db"))
	for _, fe := range append([]string{h.Balanced}, h.Only...) {
		WaitTCP(t, fe, 10*time.Second)
	}
	return h
}

func haproxyConfig(h *HAProxy, backends []string, opts HAProxyOptions) string {
	var b strings.Builder
	b.WriteString(`global
    maxconn 200
defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
`)
	check := ""
	if opts.HealthCheck {
		b.WriteString("    retries 3\n    option redispatch 1\n")
		check = " check inter 300ms fall 1 rise 2"
	}
	fmt.Fprintf(&b, "frontend balanced\n    bind %s\n    default_backend balanced\n", h.Balanced)
	b.WriteString("backend balanced\n    balance roundrobin\n")
	for i, be := range backends {
		fmt.Fprintf(&b, "    server p%d %s send-proxy-v2%s\n", i, be, check)
	}
	// One server each: nothing to check or fail over to.
	for i, be := range backends {
		fmt.Fprintf(&b, "frontend only%d\n    bind %s\n    default_backend only%d\n", i, h.Only[i], i)
		fmt.Fprintf(&b, "backend only%d\n    server p%d %s send-proxy-v2\n", i, i, be)
	}
	return b.String()
}
