//go:build !urfave_cli_no_docs

package main

import "github.com/urfave/cli/v2"

// manPage renders the help of every command and flag as a man page (roff),
// with urfave/cli's generator. `make deb` runs `postern man` from a build
// without the urfave_cli_no_docs tag and ships the result as postern(1).
func manPage(app *cli.App) (string, error) { return app.ToMan() }
