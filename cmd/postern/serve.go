package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/postern/postern/cmd/postern/internal/serve"
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
			inst, err := serve.Build(serveConfig(c), log)
			if err != nil {
				return err
			}
			lns, err := inst.Listen()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			go reloadOnHUP(ctx, inst)
			return inst.Run(ctx, lns)
		},
	}
}

// reloadOnHUP reloads users, sender map, limit file and certificates on
// each SIGHUP.
func reloadOnHUP(ctx context.Context, inst *serve.Instance) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			inst.Reload()
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
			inst, err := serve.Build(serveConfig(c), log)
			if err != nil {
				return err
			}
			w := c.App.Writer
			for _, ci := range inst.Certs().Certificates() {
				fmt.Fprintf(w, "certificate %s: names=%v issuer=%q expires=%s\n",
					ci.Source, ci.Names, ci.Issuer, ci.NotAfter.Format("2006-01-02"))
				if ci.Warning != "" {
					fmt.Fprintf(w, "  WARNING: %s\n", ci.Warning)
				}
			}
			if ac := inst.Autoconfig(); ac != nil {
				for _, name := range ac.HostNames() {
					if !inst.Certs().Covers(name) {
						fmt.Fprintf(w, "WARNING: no certificate covers %s: clients will refuse its documents (add it to --tls-sni-dir, or use ACME, which adds it by itself)\n", name)
					}
				}
			}
			if err := warnUpstream(c, inst); err != nil {
				return err
			}
			fmt.Fprintln(w, "configuration OK")
			return nil
		},
	}
}
