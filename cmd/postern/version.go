package main

import (
	"fmt"
	"runtime"

	"github.com/postern/postern/internal/cli"
)

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version",
		Action: func(c *cli.Context) error {
			fmt.Fprintf(c.App.Writer, "postern %s (%s)\n", version, runtime.Version())
			return nil
		},
	}
}
