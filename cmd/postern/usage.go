package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// usageExitCode is the exit code of a command line that cannot be run: an
// unknown command or flag, a bad flag value, wrong arguments (2, like Go's
// flag package and most Unix tools).
const usageExitCode = 2

// usageErrorf is a usage error: one line, exit code 2. urfave/cli's own
// reaction (print "Incorrect Usage" and the whole help, exit 1) buries the
// line that names the mistake.
func usageErrorf(format string, a ...any) cli.ExitCoder {
	return cli.Exit(fmt.Sprintf(format, a...), usageExitCode)
}

// appUsageError is the app's OnUsageError: a bad global flag.
func appUsageError(c *cli.Context, err error, _ bool) error {
	return usageErrorf("%v (%s --help lists the commands and options)", err, c.App.Name)
}

// showAppHelp is the app's action: the help without a command, a usage
// error naming a command that does not exist.
func showAppHelp(c *cli.Context) error {
	if c.Args().Present() {
		return unknownCommand(c, c.Args().First())
	}
	return cli.ShowAppHelp(c)
}

func unknownCommand(c *cli.Context, name string) error {
	return usageErrorf("unknown command %q (%s --help lists them)", name, c.App.Name)
}

// strictUsage makes cmd's usage errors one line naming the command and
// the flag (exit 2), and, for a command that takes no arguments (no
// ArgsUsage), a stray argument one too: urfave/cli would ignore it, and
// `serve --upstream a:25 b:25` would quietly drop b:25.
func strictUsage(cmd *cli.Command) {
	cmd.OnUsageError = func(c *cli.Context, err error, _ bool) error {
		return usageErrorf("%s: %v (%s %s --help lists the flags)", cmd.Name, err, c.App.Name, cmd.Name)
	}
	if cmd.ArgsUsage != "" {
		return
	}
	before := cmd.Before
	cmd.Before = func(c *cli.Context) error {
		if first := c.Args().First(); first == "help" || first == "h" {
			return nil // `postern serve help`: urfave runs its help subcommand next
		}
		if c.Args().Present() {
			return usageErrorf("%s: unexpected argument %q (flags go before arguments; %s %s --help lists them)",
				cmd.Name, c.Args().First(), c.App.Name, cmd.Name)
		}
		if before != nil {
			return before(c)
		}
		return nil
	}
}

// helpCommand is urfave/cli's `help [command]` (same name, alias and
// usage, so the help lists it as before), except that an unknown command
// is a usage error (urfave: "No help topic", exit 3).
func helpCommand() *cli.Command {
	return &cli.Command{
		Name:      "help",
		Aliases:   []string{"h"},
		Usage:     "Shows a list of commands or help for one command",
		ArgsUsage: "[command]",
		Action: func(c *cli.Context) error {
			name := c.Args().First()
			if name == "" {
				return cli.ShowAppHelp(c)
			}
			if c.App.Command(name) == nil {
				return unknownCommand(c, name)
			}
			// The app's context: ShowCommandHelp looks name up among
			// its context's commands.
			return cli.ShowCommandHelp(c.Lineage()[1], name)
		},
	}
}
