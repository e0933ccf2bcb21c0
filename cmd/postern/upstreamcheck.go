package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/postern/postern/cmd/postern/internal/serve"
	"github.com/postern/postern/proxy/upstream"
)

// upstreamCheckTimeout bounds check-config's whole probe of one upstream
// (connect, TLS, greeting, EHLO, AUTH, QUIT).
const upstreamCheckTimeout = 10 * time.Second

// strictFlag is check-config's --strict: a warning about the running
// system (the upstream cannot be reached) fails the check.
func strictFlag() cli.Flag {
	return &cli.BoolFlag{Name: "strict", Usage: "exit 1 when the upstream cannot be reached, instead of a warning", EnvVars: env("strict")}
}

// warnUpstream probes every --upstream for check-config as serve would
// dial it (upstream.Probe: TCP, implicit TLS or STARTTLS per
// --upstream-tls, greeting, EHLO, AUTH; no mail): each one that cannot be
// reached is a WARNING line on stderr (exit 0), or, with --strict, an error
// (serve is ready with one, but a standby that cannot be reached is no
// standby). A configuration can be valid without its MTA (Postfix may
// start later; issue 23, trap 5).
func warnUpstream(c *cli.Context, inst *serve.Instance) error {
	up := inst.Upstream()
	var unreachable []error
	for _, addr := range inst.Upstreams() {
		up.Addr = addr
		ctx, cancel := context.WithTimeout(c.Context, upstreamCheckTimeout)
		err := upstream.Probe(ctx, up)
		cancel()
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
