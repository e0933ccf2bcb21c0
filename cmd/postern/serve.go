package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"github.com/postern/postern/proxy/listen"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:   "serve",
		Usage:  "run the submission proxy",
		Flags:  serveFlags(),
		Before: applyConfigFile,
		Action: func(c *cli.Context) error {
			log, err := newLogger(c.App.ErrWriter, c.String("log-format"), c.String("log-level"))
			if err != nil {
				return err
			}
			inst, err := buildInstance(c, log)
			if err != nil {
				return err
			}
			checkFileLimit(log, fileNeed{
				smtp:    c.Int("max-connections"),
				http:    c.Int("max-http-connections"),
				metrics: listen.MetricsMaxConnections,
				pool:    c.Int("upstream-pool") * len(c.StringSlice("upstream")), // a pool per upstream
			})
			lns, err := bindListeners(c, inst, log)
			if err != nil {
				return err
			}
			for _, a := range inst.server.Addrs() {
				log.Info("listening", "addr", a.String())
			}
			if lns.https != nil {
				log.Info("listening", "addr", lns.https.Addr().String(), "serves", "autoconfig https")
			}
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			go reloadOnHUP(ctx, inst)
			if inst.state != nil {
				defer inst.state.Close()
				checkState(ctx, inst.state)
				// The watch stops before the store it reads is closed.
				defer runUntilReturn(ctx, inst.evictions.Run)()
			}
			go inst.limits.alerts.Run(ctx)
			return runParts(ctx, inst, lns, c.Bool("pprof"), log)
		},
	}
}

// runParts serves every bound listener and runs the certificate manager
// until ctx ends or one of them fails. Every part here fails only when its
// listener or its loop breaks, which a restart (re-binding, re-reading) is
// what mends; so a failing part ends them all and serve returns its error
// (exit 1) for the supervisor to restart the process, rather than serving
// on without it: SMTP without certificate renewal and the file poller (the
// certificate manager), or with a /readyz nobody can ask (metrics). What a
// restart would not mend (the upstream or the state store being down)
// turns /readyz to 503 instead (readiness, state's fallback) and is no part.
func runParts(ctx context.Context, inst *instance, lns *boundListeners, withPprof bool, log *slog.Logger) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return inst.certs.Run(ctx, lns.http01) })
	if lns.control != nil {
		g.Go(func() error { return serveControl(ctx, lns.control, inst.limits.limits, log) })
	}
	if lns.https != nil {
		g.Go(func() error {
			return serveHTTPS(ctx, lns.https, inst.certs.TLSConfig(), inst.autoconfig.Handler(), log)
		})
	}
	if ln := inst.server.HTTPSListener(); ln != nil {
		var h http.Handler
		if inst.autoconfig != nil {
			h = inst.autoconfig.Handler()
		}
		g.Go(func() error { return serveSharedHTTP(ctx, ln, h, log) })
	}
	if lns.metrics != nil {
		g.Go(func() error { return serveMetrics(ctx, lns.metrics, inst.registry, inst.ready, withPprof, log) })
	}
	g.Go(func() error { return inst.server.Serve(ctx, inst.drain) })
	if err := g.Wait(); err != nil {
		log.Error("stopped", "err", err)
		return err
	}
	return nil
}

// reloadOnHUP reloads users, sender map and certificates on each SIGHUP.
func reloadOnHUP(ctx context.Context, inst *instance) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			inst.reload()
		}
	}
}

func checkConfigCommand() *cli.Command {
	return &cli.Command{
		Name:   "check-config",
		Usage:  "validate the configuration like `nginx -t` and list the certificates that would be served; warns (exit 0) when the upstream cannot be reached",
		Flags:  append(serveFlags(), strictFlag()),
		Before: applyConfigFile,
		Action: func(c *cli.Context) error {
			log, err := newLogger(c.App.ErrWriter, c.String("log-format"), "warn")
			if err != nil {
				return err
			}
			inst, err := buildInstance(c, log)
			if err != nil {
				return err
			}
			w := c.App.Writer
			for _, ci := range inst.certs.Certificates() {
				fmt.Fprintf(w, "certificate %s: names=%v issuer=%q expires=%s\n",
					ci.Source, ci.Names, ci.Issuer, ci.NotAfter.Format("2006-01-02"))
				if ci.Warning != "" {
					fmt.Fprintf(w, "  WARNING: %s\n", ci.Warning)
				}
			}
			if inst.autoconfig != nil {
				for _, name := range inst.autoconfig.HostNames() {
					if !inst.certs.Covers(name) {
						fmt.Fprintf(w, "WARNING: no certificate covers %s: clients will refuse its documents (add it to --tls-sni-dir, or use ACME, which adds it by itself)\n", name)
					}
				}
			}
			if err := warnUpstream(c); err != nil {
				return err
			}
			fmt.Fprintln(w, "configuration OK")
			return nil
		},
	}
}
