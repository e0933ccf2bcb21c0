package main

import (
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/certs"
	"github.com/postern/postern/proxy"
)

const demoLogin = "demo@postern.test"

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run everything on loopback: a throw-away certificate, a demo user and a sink that stores messages as files",
		Flags: []cli.Flag{
			str("dir", "", "directory for received messages (default: a new temporary directory)"),
			str("log-format", "text", "text|json"),
		},
		Action: runDemo,
	}
}

func runDemo(c *cli.Context) error {
	log, err := newLogger(c.App.ErrWriter, c.String("log-format"), "info")
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
	hash, err := auth.HashPassword(password, "BLF-CRYPT")
	if err != nil {
		return err
	}
	usersFile := filepath.Join(dir, "users")
	if err := os.WriteFile(usersFile, []byte(demoLogin+":"+hash+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing the demo users file: %w", err)
	}
	users, err := auth.OpenPasswdFile(usersFile, log)
	if err != nil {
		return err
	}
	sink, err := startDemoSink(dir, log)
	if err != nil {
		return err
	}
	defer sink.Close()
	cm, err := certs.New(certs.Config{Hostname: "localhost", SelfSigned: true}, log)
	if err != nil {
		return err
	}
	srv, err := proxy.New(proxy.Config{
		Hostname: "localhost",
		Listeners: []proxy.Listener{
			{Mode: proxy.ModeStartTLS, Addr: "127.0.0.1:0"},
			{Mode: proxy.ModeTLS, Addr: "127.0.0.1:0"},
		},
		TLSConfig:       cm.TLSConfig(),
		Upstream:        proxy.UpstreamConfig{Addr: sink.Addr()},
		Auth:            users,
		MaxMessageBytes: 52428800,
		MaxRecipients:   100,
		CommandTimeout:  5 * time.Minute,
		DataTimeout:     10 * time.Minute,
		Log:             log,
	})
	if err != nil {
		return err
	}
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
	err = srv.Serve(ctx, 5*time.Second)
	fmt.Fprintf(c.App.Writer, "Postern demo stopped; messages are in %s\n", dir)
	return err
}
