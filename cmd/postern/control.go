package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/postern/postern/cmd/postern/internal/control"
	"github.com/postern/postern/cmd/postern/internal/serve"
	"github.com/postern/postern/limits"
)

// The commands `status` and `unsuspend`: a login's sending counters and
// suspension, read from Redis with --state redis://…, else asked of the
// running instance on its control socket (cmd/postern/internal/control).

// statusFlags: `status` and `unsuspend` take serve's flags (and its
// --config file), so the same settings name the same counters: with --state
// redis://… they read Redis themselves, with memory they ask the running
// instance on --control-socket.
func statusFlags() []cli.Flag { return serveFlags() }

// withLimits runs fn on the login's limits: over Redis directly, or nil
// for "ask the control socket".
func withLimits(c *cli.Context, fn func(context.Context, *limits.Limits) error) error {
	if c.String("state") == serve.StateMemory {
		return fn(c.Context, nil)
	}
	log, err := newLogger(c.App.ErrWriter, c.String("log-format"), "warn")
	if err != nil {
		return err
	}
	return serve.WithSharedLimits(c.Context, serveConfig(c), log, fn)
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show a login's sending counters and suspension (from Redis with --state redis://, else asks the running instance); LOGIN is the account's canonical identity (the login= of the log lines)",
		ArgsUsage: "LOGIN",
		Flags:     statusFlags(),
		Before:    applyConfigFile,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("usage: postern status [flags] LOGIN", 2)
			}
			login, err := statusLogin(c, c.Args().First())
			if err != nil {
				return err
			}
			var st limits.LoginStatus
			err = withLimits(c, func(ctx context.Context, l *limits.Limits) error {
				var err error
				if l == nil {
					st, err = control.Status(ctx, c.String("control-socket"), login)
				} else {
					st, err = l.Status(ctx, login)
				}
				return err
			})
			if err != nil {
				return err
			}
			printStatus(c.App.Writer, st)
			printNothingRecorded(c.App.Writer, st)
			return nil
		},
	}
}

func printStatus(w io.Writer, st limits.LoginStatus) {
	fmt.Fprintf(w, "login %s\n", st.Login)
	for _, l := range []struct {
		name string
		ls   limits.LimitStatus
	}{{limits.LimitMessages, st.Messages}, {limits.LimitRecipients, st.Recipients}} {
		if l.ls.Limit == "*" {
			fmt.Fprintf(w, "%s: no limit\n", l.name)
			continue
		}
		fmt.Fprintf(w, "%s: %d of %s, %d attempts over the limit\n", l.name, l.ls.Count, l.ls.Limit, l.ls.Over)
	}
	fmt.Fprintf(w, "recipients refused by the upstream in the last %s: %d (accepted %d)\n",
		st.Refused.Window, st.Refused.Refused, st.Refused.Accepted)
	if s := st.Suspension; s != nil {
		fmt.Fprintf(w, "suspended since %s until %s: %s\n",
			s.Since.UTC().Format(time.RFC3339), s.Until.UTC().Format(time.RFC3339), s.Reason)
	} else {
		fmt.Fprintln(w, "not suspended")
	}
}

func unsuspendCommand() *cli.Command {
	return &cli.Command{
		Name:      "unsuspend",
		Usage:     "lift a login's suspension (in Redis with --state redis://, else asks the running instance); LOGIN is the account's canonical identity (the login= of the log lines)",
		ArgsUsage: "LOGIN",
		Flags:     statusFlags(),
		Before:    applyConfigFile,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("usage: postern unsuspend [flags] LOGIN", 2)
			}
			login, err := statusLogin(c, c.Args().First())
			if err != nil {
				return err
			}
			var res control.UnsuspendResult
			err = withLimits(c, func(ctx context.Context, l *limits.Limits) error {
				var err error
				if l == nil {
					res, err = control.Unsuspend(ctx, c.String("control-socket"), login)
					return err
				}
				was, err := l.Unsuspend(ctx, login)
				res = control.UnsuspendResult{Login: strings.ToLower(login), WasSuspended: was}
				return err
			})
			if err != nil {
				return err
			}
			if res.WasSuspended {
				fmt.Fprintf(c.App.Writer, "%s unsuspended\n", res.Login)
			} else {
				// Counters are kept under the account's canonical
				// identity only: another spelling finds nothing.
				fmt.Fprintf(c.App.Writer, "%s was not suspended (its over-limit attempts are forgotten; LOGIN is the account's canonical identity, the login= of the log lines)\n", res.Login)
			}
			return nil
		},
	}
}
