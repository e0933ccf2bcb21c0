// Command postern is an authenticating STARTTLS submission proxy: it listens
// where mail clients send (587, 465, 2525), authenticates users, checks the
// sender, writes an anonymous Received header and streams every message to
// the internal MTA, answering 250 only after the MTA did.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := newApp(os.Stdin, os.Stdout, os.Stderr).Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "postern:", err)
		os.Exit(1)
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
		// Unknown flags and subcommands are errors that name them.
		CommandNotFound: func(c *cli.Context, name string) {
			fmt.Fprintf(c.App.ErrWriter, "postern: unknown command %q\n", name)
			os.Exit(2)
		},
		Commands: []*cli.Command{
			serveCommand(),
			demoCommand(),
			hashPasswordCommand(),
			checkConfigCommand(),
			dnsRecordsCommand(),
			healthcheckCommand(),
			versionCommand(),
		},
	}
}
