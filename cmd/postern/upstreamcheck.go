package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/urfave/cli/v2"

	"github.com/postern/postern/proxy/upstream"
)

// upstreamCheckTimeout bounds check-config's whole probe of the upstream
// (connect, TLS, greeting, EHLO, QUIT).
const upstreamCheckTimeout = 10 * time.Second

// checkUpstream connects to the upstream as serve would (TCP, implicit TLS
// or STARTTLS per --upstream-tls) and takes its greeting and EHLO reply:
// check-config says when the MTA cannot be reached (issue 23, trap 5),
// which a configuration can be valid without (Postfix may start later).
// It does not send mail.
func checkUpstream(ctx context.Context, up upstream.Config, heloName string) error {
	ctx, cancel := context.WithTimeout(ctx, upstreamCheckTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", up.Addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if up.TLSConfig != nil {
		tlsConfig = up.TLSConfig.Clone()
	}
	if host, _, err := net.SplitHostPort(up.Addr); err == nil && tlsConfig.ServerName == "" {
		tlsConfig.ServerName = host
	}
	if up.TLS == "tls" {
		tc := tls.Client(conn, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS: %w", err)
		}
		conn = tc
	}
	client := smtp.NewClient(conn)
	defer client.Close()
	if err := client.Hello(heloName); err != nil {
		return fmt.Errorf("greeting and EHLO: %w", err)
	}
	if up.TLS == "starttls" {
		if err := client.StartTLS(tlsConfig); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
	}
	return client.Quit()
}

// strictFlag is check-config's --strict: a warning about the running
// system (the upstream cannot be reached) fails the check.
func strictFlag() cli.Flag {
	return &cli.BoolFlag{Name: "strict", Usage: "exit 1 when the upstream cannot be reached, instead of a warning", EnvVars: env("strict")}
}

// warnUpstream probes every --upstream for check-config: each one that
// cannot be reached is a WARNING line on stderr (exit 0), or, with
// --strict, an error (serve is ready with one, but a standby that cannot be
// reached is no standby).
func warnUpstream(c *cli.Context) error {
	up, err := buildUpstream(c)
	if err != nil {
		return err
	}
	helo := c.String("hostname")
	if helo == "" {
		helo = "localhost"
	}
	var unreachable []error
	for _, addr := range c.StringSlice("upstream") {
		up.Addr = addr
		err := checkUpstream(c.Context, up, helo)
		if err == nil {
			continue
		}
		if c.Bool("strict") {
			unreachable = append(unreachable, fmt.Errorf("upstream %s cannot be reached: %w", addr, err))
			continue
		}
		fmt.Fprintf(c.App.ErrWriter, "WARNING: upstream %s cannot be reached (serve would answer 4xx until it can): %v\n", addr, err)
	}
	return errors.Join(unreachable...)
}
