package main

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/postern/postern/auth/usersfile"
	"github.com/postern/postern/certs"
	"github.com/postern/postern/cmd/postern/internal/serve"
)

const demoLogin = "demo@postern.test"

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run everything on loopback: a throw-away certificate, a demo user and a sink that stores messages as files",
		Flags: []cli.Flag{
			str("dir", "", "directory for received messages (default: a new temporary directory)"),
			str("log-format", defaultLogFormat, "text|json"),
		},
		Action: runDemo,
	}
}

func runDemo(c *cli.Context) error {
	log, err := newLogger(c.App.ErrWriter, c.String("log-format"), defaultLogLevel)
	if err != nil {
		return err
	}
	dir := c.String("dir")
	if dir == "" {
		if dir, err = os.MkdirTemp("", "postern-demo-"); err != nil {
			return fmt.Errorf("creating the demo directory: %w", err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating the demo directory: %w", err)
	}
	password := rand.Text()[:16]
	hash, err := usersfile.HashPassword(password, "BLF-CRYPT")
	if err != nil {
		return err
	}
	usersFile := filepath.Join(dir, "users")
	if err := os.WriteFile(usersFile, []byte(demoLogin+":"+hash+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing the demo users file: %w", err)
	}
	certFile, keyFile, err := writeDemoCertificate(dir)
	if err != nil {
		return err
	}
	sink, err := startDemoSink(dir, log)
	if err != nil {
		return err
	}
	defer sink.Close()
	// The demo is `serve` with these flags: it builds its instance the
	// same way and has every other default (limits, timeouts, lockout).
	inst, err := demoInstance(c, log, []string{
		"--hostname", "localhost",
		"--listen", "starttls=127.0.0.1:0",
		"--listen", "tls=127.0.0.1:0",
		"--upstream", sink.Addr(),
		"--users", usersFile,
		"--tls-cert", certFile,
		"--tls-key", keyFile,
		"--shutdown-timeout", "5s",
	})
	if err != nil {
		return err
	}
	srv := inst.Server()
	if err := srv.Listen(); err != nil {
		return err
	}
	addrs := srv.Addrs()
	starttls, implicit := addrs[0].(*net.TCPAddr), addrs[1].(*net.TCPAddr)
	fmt.Fprintf(c.App.Writer, `Postern demo is running (Ctrl-C to stop).

  STARTTLS submission: 127.0.0.1:%d    implicit TLS: 127.0.0.1:%d
  login: %s   password: %s
  messages are stored in: %s

Send a message (the certificate is self-signed and throw-away):

  swaks --server 127.0.0.1:%d --tls --auth-user %s --auth-password %s --from %s --to friend@example.org

or over implicit TLS:

  swaks --server 127.0.0.1:%d --tlsc --auth-user %s --auth-password %s --from %s --to friend@example.org

`, starttls.Port, implicit.Port, demoLogin, password, dir,
		starttls.Port, demoLogin, password, demoLogin,
		implicit.Port, demoLogin, password, demoLogin)

	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err = srv.Serve(ctx, inst.Drain())
	fmt.Fprintf(c.App.Writer, "Postern demo stopped; messages are in %s\n", dir)
	return err
}

// demoInstance builds an instance with serve.Build from serve's flags set
// to args; everything else keeps its default. The environment is not read:
// POSTERN_* variables configure serve, not the demo.
func demoInstance(c *cli.Context, log *slog.Logger, args []string) (*serve.Instance, error) {
	set := flag.NewFlagSet("demo", flag.ContinueOnError)
	set.SetOutput(io.Discard)
	for _, f := range serveFlags() {
		f, err := withoutEnv(f)
		if err != nil {
			return nil, err
		}
		if err := f.Apply(set); err != nil {
			return nil, fmt.Errorf("demo flags: %w", err)
		}
	}
	if err := set.Parse(args); err != nil {
		return nil, fmt.Errorf("demo flags: %w", err)
	}
	if set.NArg() > 0 {
		return nil, fmt.Errorf("demo flags: unexpected arguments %q", set.Args())
	}
	return serve.Build(serveConfig(cli.NewContext(c.App, set, c)), log)
}

// withoutEnv returns a copy of f with no environment twin (urfave/cli
// reads a flag's environment variables when the flag is applied).
func withoutEnv(f cli.Flag) (cli.Flag, error) {
	switch f := f.(type) {
	case *cli.StringFlag:
		g := *f
		g.EnvVars = nil
		return &g, nil
	case *cli.StringSliceFlag:
		g := *f
		g.EnvVars = nil
		return &g, nil
	case *cli.DurationFlag:
		g := *f
		g.EnvVars = nil
		return &g, nil
	case *cli.IntFlag:
		g := *f
		g.EnvVars = nil
		return &g, nil
	case *cli.Int64Flag:
		g := *f
		g.EnvVars = nil
		return &g, nil
	case *cli.BoolFlag:
		g := *f
		g.EnvVars = nil
		return &g, nil
	}
	return nil, fmt.Errorf("demo flags: --%s: flag type %T has no case in withoutEnv", f.Names()[0], f)
}

// writeDemoCertificate writes a throw-away self-signed certificate for
// localhost, 127.0.0.1 and ::1 into dir, for --tls-cert and --tls-key.
func writeDemoCertificate(dir string) (certFile, keyFile string, err error) {
	cert, err := certs.SelfSigned("localhost", "127.0.0.1", "::1")
	if err != nil {
		return "", "", fmt.Errorf("making the demo certificate: %w", err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return "", "", fmt.Errorf("encoding the demo key: %w", err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644); err != nil {
		return "", "", fmt.Errorf("writing the demo certificate: %w", err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		return "", "", fmt.Errorf("writing the demo key: %w", err)
	}
	return certFile, keyFile, nil
}
