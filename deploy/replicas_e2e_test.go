package deploy_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/testkit"
	"github.com/postern/postern/proxy/proxytest"
)

// TestHAProxyReplicasE2E runs haproxy/replicas.cfg itself, with only its
// addresses moved to loopback, in front of two real postern replicas on
// one real Redis and a real Postfix (the third replica of the file is
// absent, as a replica that is down). The replicas listen on other
// loopback addresses at the ports HAProxy binds, as each container does
// at its own address. It proves what the file is for: each of 587, 465 and
// 2525 reaches the replicas' listener of that port, the replicas learn
// the client's address from the PROXY v2 header, and once a replica is
// stopped every new client still gets through (health check on /readyz,
// redispatch).
func TestHAProxyReplicasE2E(t *testing.T) {
	haproxy := testkit.RequireTool(t, "haproxy")
	bin := postern(t)
	const client = "127.0.0.5" // the client's address, as HAProxy sees it
	replicaIPs := []string{"127.0.0.2", "127.0.0.3"}

	redis := testkit.StartRedis(t)
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir)
	files := replicaFiles(t)

	// The ports HAProxy binds (on 127.0.0.1) and the replicas listen on
	// (at their own addresses), as in the compose file.
	ports := map[string]int{"587": testkit.FreePort(t), "465": testkit.FreePort(t), "2525": testkit.FreePort(t), "80": testkit.FreePort(t)}
	metrics := testkit.FreePort(t)

	var replicas []*testkit.Process
	for _, ip := range replicaIPs {
		cmd := exec.Command(bin, "serve",
			"--hostname", "localhost",
			"--listen", fmt.Sprintf("starttls=%s:%d", ip, ports["587"]),
			"--listen", fmt.Sprintf("tls=%s:%d", ip, ports["465"]),
			"--listen", fmt.Sprintf("starttls=%s:%d", ip, ports["2525"]),
			"--upstream", pf.Addr,
			"--users", filepath.Join(files, "users"),
			"--tls-cert", certFile, "--tls-key", keyFile,
			"--acme-http", "none",
			"--state", redis.URL(),
			"--proxy-protocol-from", "127.0.0.1/32",
			"--metrics", fmt.Sprintf("%s:%d", ip, metrics),
			"--shutdown-timeout", "5s")
		cmd.Env = cleanEnv()
		p := testkit.StartCmd(t, cmd)
		testkit.WaitTCP(t, fmt.Sprintf("%s:%d", ip, ports["587"]), 15*time.Second)
		replicas = append(replicas, p)
	}

	// The file as shipped, its addresses on loopback.
	raw, err := os.ReadFile("haproxy/replicas.cfg")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(raw)
	for port, p := range ports {
		cfg = mustReplace(t, cfg, "bind :"+port+"\n", fmt.Sprintf("bind 127.0.0.1:%d\n", p))
	}
	cfg = mustReplace(t, cfg, "check port 9090", "check port "+strconv.Itoa(metrics))
	for i, name := range []string{"postern1", "postern2", "postern3"} {
		ip := "127.0.0.4" // postern3: nothing listens there
		if i < len(replicaIPs) {
			ip = replicaIPs[i]
		}
		cfg = mustReplace(t, cfg, "server "+name+" "+name+" ", "server "+name+" "+ip+" ")
		cfg = mustReplace(t, cfg, "server "+name+" "+name+":80 ", fmt.Sprintf("server %s %s:%d ", name, ip, ports["80"]))
	}
	// A stats socket, the test's only addition: it waits on it until
	// HAProxy's own checks have seen a replica down, as an operator
	// would, rather than racing them (a connection HAProxy retries on
	// replicas it still believes up can run out of retries).
	stats := filepath.Join(dir, "stats.sock")
	cfg = mustReplace(t, cfg, "global\n", "global\n    stats socket "+stats+"\n")
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	testkit.StartCmd(t, exec.Command(haproxy, "-f", path, "-db"))
	for _, port := range []string{"587", "465", "2525"} {
		testkit.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", ports[port]), 10*time.Second)
	}

	// Replica 3's address has nothing listening: send once HAProxy's
	// checks have marked it down.
	waitServerDown(t, stats, "postern3")

	sent := 0
	send := func(port string) {
		t.Helper()
		sent++
		addr := fmt.Sprintf("127.0.0.1:%d", ports[port])
		if err := sendFrom(client, addr, port == "465", sent); err != nil {
			t.Fatalf("message %d through HAProxy's %s: %v", sent, port, err)
		}
	}
	// Every port, a few times, with both replicas up.
	for range 2 {
		for _, port := range []string{"587", "465", "2525"} {
			send(port)
		}
	}
	pf.WaitMessages(t, sent, 60*time.Second)
	// Each session's disconnect line counts its messages under the
	// client's address: the PROXY v2 header's, never HAProxy's.
	waitSessions(t, replicas, sent)
	for i, p := range replicas {
		for ip, n := range sessionMessages(p) {
			if ip != client && n > 0 {
				t.Errorf("replica %d: %d messages from %s, want every one from %s (the PROXY v2 header's address)", i+1, n, ip, client)
			}
		}
	}

	// A replica stops: every new client still gets through.
	if err := replicas[0].Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-replicas[0].Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("replica 1 did not stop after SIGTERM:\n%s", replicas[0].Output())
	}
	waitServerDown(t, stats, "postern1")
	// From here only replica 2 logs sessions.
	before := sessionMessages(replicas[1])[client]
	replica1Took := sent - before
	for range 2 {
		for _, port := range []string{"587", "465", "2525"} {
			send(port)
		}
	}
	pf.WaitMessages(t, sent, 60*time.Second)
	waitSessions(t, replicas[1:], sent-replica1Took)
	if got := sessionMessages(replicas[1])[client] - before; got != 6 {
		t.Errorf("after replica 1 stopped, replica 2 took %d of 6 messages", got)
	}
}

// disconnectLine is a session's last log line: its client and messages.
var disconnectLine = regexp.MustCompile(`msg=disconnect session=\S+ client=(\S+):\d+ messages=(\d+)`)

// sessionMessages sums the messages of p's ended sessions by client
// address.
func sessionMessages(p *testkit.Process) map[string]int {
	byClient := map[string]int{}
	for _, m := range disconnectLine.FindAllStringSubmatch(p.Output(), -1) {
		n, _ := strconv.Atoi(m[2])
		byClient[m[1]] += n
	}
	return byClient
}

// waitSessions waits until the replicas' ended sessions hold n messages in
// all (a disconnect line follows the client's QUIT).
func waitSessions(t *testing.T, replicas []*testkit.Process, n int) {
	t.Helper()
	total := func() int {
		sum := 0
		for _, p := range replicas {
			for _, k := range sessionMessages(p) {
				sum += k
			}
		}
		return sum
	}
	testkit.WaitOutputs(t, fmt.Sprintf("%d messages in the replicas' disconnect lines", n), 15*time.Second,
		func() bool { return total() >= n }, replicas...)
	if got := total(); got != n {
		t.Fatalf("the replicas' sessions hold %d messages, want %d", got, n)
	}
}

// waitServerDown waits until HAProxy's stats socket reports server name of
// backend postern DOWN (its health checks failed), or fails the test.
func waitServerDown(t *testing.T, socket, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		last = serverStatus(socket, name)
		if strings.HasPrefix(last, "DOWN") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("HAProxy never marked %s down (last status %q)", name, last)
}

// serverStatus is the status column of "show stat" for server name of
// backend postern, or the error that kept it from being read.
func serverStatus(socket, name string) string {
	c, err := net.DialTimeout("unix", socket, time.Second)
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("show stat\n")); err != nil {
		return err.Error()
	}
	out, err := io.ReadAll(c)
	if err != nil {
		return err.Error()
	}
	for _, line := range strings.Split(string(out), "\n") {
		// pxname,svname,...: status is the 18th field.
		f := strings.Split(line, ",")
		if len(f) > 17 && f[0] == "postern" && f[1] == name {
			return f[17]
		}
	}
	return "no row for " + name
}

func mustReplace(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("haproxy/replicas.cfg no longer contains %q", old)
	}
	return strings.ReplaceAll(s, old, new)
}

// sendFrom sends message n from local address from to addr: implicit TLS
// or STARTTLS, AUTH as alice (replicaFiles' user).
func sendFrom(from, addr string, implicitTLS bool, n int) error {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	tlsConfig := &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}
	var c *smtp.Client
	if implicitTLS {
		c = smtp.NewClient(tls.Client(conn, tlsConfig))
	} else if c, err = smtp.NewClientStartTLS(conn, tlsConfig); err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	c.CommandTimeout = 30 * time.Second
	c.SubmissionTimeout = 30 * time.Second
	if err := c.Auth(sasl.NewPlainClient("", "alice@example.org", "secret")); err != nil {
		return err
	}
	msg := fmt.Sprintf("From: alice@example.org\r\nTo: bob@%s\r\nSubject: replica %d\r\n\r\nmessage %d\r\n", proxytest.PostfixDomain, n, n)
	if err := c.SendMail("alice@example.org", []string{"bob@" + proxytest.PostfixDomain}, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}
