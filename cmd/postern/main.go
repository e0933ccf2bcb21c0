// Command postern is an authenticating STARTTLS submission proxy: it listens
// where mail clients send (587, 465, 2525), authenticates users, checks the
// sender, writes an anonymous Received header and streams every message to
// the internal MTA, answering 250 only after the MTA did.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// main is the only place that exits: commands return errors, and an error
// carrying an exit code (cli.Exit; 2 for a usage error such as an unknown
// command or flag) sets it.
func main() {
	app := newApp(os.Stdin, os.Stdout, os.Stderr)
	warnUnknownEnv(app, os.Environ(), os.Stderr)
	if err := app.RunContext(context.Background(), os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "postern:", err)
		code := 1
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			code = ec.ExitCode()
		}
		os.Exit(code)
	}
}

// newApp is the command line (urfave/cli/v2). Without a command it prints
// the help; an unknown command or flag, a bad flag value and a stray
// argument are usage errors that name them (exit 2, see usage.go).
func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:      "postern",
		Usage:     "authenticating STARTTLS submission proxy in front of your MTA",
		Version:   version,
		Reader:    stdin,
		Writer:    stdout,
		ErrWriter: stderr,
		// The app never exits by itself (urfave's default handler calls
		// os.Exit): main does, with the error's code.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   appUsageError,
		Action:         showAppHelp,
		// urfave adds --help itself only with its own help command.
		Flags: []cli.Flag{cli.HelpFlag},
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
			userCommand(),
			manCommand(),
		},
	}
	for _, cmd := range app.Commands {
		strictUsage(cmd)
	}
	app.Commands = append(app.Commands, helpCommand())
	return app
}
