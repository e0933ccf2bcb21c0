package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testkit"
)

// TestServeListenerTakenE2E: for each kind of listener, a port the test
// holds makes `postern serve` exit 1 at start-up with a line naming the
// address, having served nothing: it announced no listener, and the SMTP
// port it was given does not accept. Before every listener was bound in
// serve, a taken --acme-http port only stopped the certificate manager
// (and with it the certificate file poller) while SMTP went on serving.
func TestServeListenerTakenE2E(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"starttls", "tls", "https", "metrics", "acme-http"} {
		t.Run(kind, func(t *testing.T) {
			taken, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer taken.Close()
			busy := taken.Addr().String()

			dir := t.TempDir()
			certFile, keyFile := writeTestCert(t, dir)
			users := filepath.Join(dir, "users")
			writeFile(t, users, usersFileContent(t))
			starttls, implicit := testkit.FreeAddr(t), testkit.FreeAddr(t)
			var extra []string
			switch kind {
			case "starttls":
				starttls = busy
			case "tls":
				implicit = busy
			case "https":
				extra = []string{"--autoconfig-domain", "example.test", "--listen", "https=" + busy}
			case "metrics":
				extra = []string{"--metrics", busy}
			case "acme-http":
				// A CA directory nobody answers on: nothing leaves loopback.
				extra = []string{"--acme-domain", "mail.example.test", "--acme-http", busy,
					"--acme-cache", filepath.Join(dir, "acme"), "--acme-directory", "http://" + testkit.FreeAddr(t) + "/dir"}
			}
			args := append([]string{"serve",
				"--hostname", "submission.test",
				"--listen", "starttls=" + starttls, "--listen", "tls=" + implicit,
				"--upstream", testkit.FreeAddr(t),
				"--users", users,
				"--tls-cert", certFile, "--tls-key", keyFile,
				"--control-socket", "none",
				"--shutdown-timeout", "1s",
			}, extra...)

			// Generous: the bind fails before anything runs.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, posternBin, args...)
			cmd.Env = cleanEnv()
			var stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stderr, &stderr
			err = cmd.Run()
			var ee *exec.ExitError
			if ctx.Err() != nil || !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("postern serve with %s taken: %v (want exit 1 at start-up)\n%s", busy, err, stderr.String())
			}
			out := stderr.String()
			if !strings.Contains(out, busy) {
				t.Errorf("the error does not name the taken address %s:\n%s", busy, out)
			}
			if strings.Contains(out, " msg=listening ") {
				t.Errorf("postern announced a listener although %s was taken:\n%s", busy, out)
			}
			if kind != "starttls" {
				if c, err := net.DialTimeout("tcp", starttls, 2*time.Second); err == nil {
					c.Close()
					t.Errorf("the STARTTLS port %s accepts after the failed start", starttls)
				}
			}
		})
	}
}
