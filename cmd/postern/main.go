// Command postern is an authenticating STARTTLS submission proxy: it listens
// where mail clients send (587, 465, 2525), authenticates users, checks the
// sender, writes an anonymous Received header and streams every message to
// the internal MTA, answering 250 only after the MTA did.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// main is the only place that exits: commands return errors, and an error
// carrying an exit code (cli.Exit, e.g. 2 for an unknown command) sets it.
func main() {
	if err := newApp(os.Stdin, os.Stdout, os.Stderr).Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "postern:", err)
		code := 1
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			code = ec.ExitCode()
		}
		os.Exit(code)
	}
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:      "postern",
		Usage:     "authenticating STARTTLS submission proxy in front of your MTA",
		Version:   version,
		Reader:    stdin,
		Writer:    stdout,
		ErrWriter: stderr,
		// Unknown flags and subcommands are errors that name them. The
		// app never exits by itself (the default handler would call
		// os.Exit): main does, with the error's code.
		ExitErrHandler: func(*cli.Context, error) {},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return cli.Exit(fmt.Sprintf("unknown command %q", c.Args().First()), 2)
			}
			return cli.ShowAppHelp(c)
		},
		Commands: []*cli.Command{
			serveCommand(),
			demoCommand(),
			hashPasswordCommand(),
			checkConfigCommand(),
			dnsRecordsCommand(),
			healthcheckCommand(),
			statusCommand(),
			unsuspendCommand(),
			versionCommand(),
		},
	}
}
