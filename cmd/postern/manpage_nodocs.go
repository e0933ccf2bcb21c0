//go:build urfave_cli_no_docs

package main

import (
	"errors"

	"github.com/urfave/cli/v2"
)

// manPage is unavailable in a release build: the urfave_cli_no_docs tag
// (Dockerfile, `make deb`) leaves urfave/cli's generator out. `postern help`
// and the installed postern(1) say the same.
func manPage(*cli.App) (string, error) {
	return "", errors.New("this build has no man-page generator (urfave_cli_no_docs); see `postern help` or man postern")
}
