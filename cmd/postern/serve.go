package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/postern/postern/proxy"
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
				metrics: proxy.MetricsMaxConnections,
				pool:    c.Int("upstream-pool"),
			})
			if err := inst.server.Listen(); err != nil {
				return err
			}
			var metricsLn net.Listener
			if addr := c.String("metrics"); addr != "" {
				if metricsLn, err = net.Listen("tcp", addr); err != nil {
					return fmt.Errorf("metrics listener: %w", err)
				}
				metricsLn = inst.httpCaps.wrap(metricsLn, httpListenerMetrics)
			}
			var httpsLn net.Listener
			if inst.httpsAddr != "" {
				if httpsLn, err = net.Listen("tcp", inst.httpsAddr); err != nil {
					return fmt.Errorf("autoconfig HTTPS listener: %w", err)
				}
				httpsLn = inst.httpCaps.wrap(httpsLn, httpListenerHTTPS)
			}
			ctl, err := listenControl(c, log)
			if err != nil {
				return err
			}
			for _, a := range inst.server.Addrs() {
				log.Info("listening", "addr", a.String())
			}
			if httpsLn != nil {
				log.Info("listening", "addr", httpsLn.Addr().String(), "serves", "autoconfig https")
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
			if ctl != nil {
				go func() {
					if err := serveControl(ctx, ctl, inst.limits.limits, log); err != nil {
						log.Error("control socket stopped", "err", err)
					}
				}()
			}
			go func() {
				if err := inst.certs.Run(ctx); err != nil {
					log.Error("certificate manager stopped", "err", err)
				}
			}()
			if httpsLn != nil {
				go func() {
					if err := serveHTTPS(ctx, httpsLn, inst.certs.TLSConfig(), inst.autoconfig.Handler(), log); err != nil {
						log.Error("autoconfig listener stopped", "err", err)
					}
				}()
			}
			if metricsLn != nil {
				go func() {
					if err := serveMetrics(ctx, metricsLn, inst.registry, inst.ready, c.Bool("pprof"), log); err != nil {
						log.Error("metrics listener stopped", "err", err)
					}
				}()
			}
			return inst.server.Serve(ctx, inst.drain)
		},
	}
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
		Usage:  "validate the configuration like `nginx -t` and list the certificates that would be served",
		Flags:  serveFlags(),
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
			fmt.Fprintln(w, "configuration OK")
			return nil
		},
	}
}
