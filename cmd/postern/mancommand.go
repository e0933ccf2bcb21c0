package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// manCommand prints the man page (postern(1)) generated from the commands'
// help, so the page cannot drift from `postern help`. Hidden: it is a build
// step of `make deb`, not something an administrator runs.
func manCommand() *cli.Command {
	return &cli.Command{
		Name:   "man",
		Usage:  "print the man page (roff) generated from the help",
		Hidden: true,
		Action: func(c *cli.Context) error {
			page, err := manPage(c.App)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(c.App.Writer, page)
			return err
		},
	}
}
