package main

import (
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// flagsDoc is the reference page that names every flag of every command.
const flagsDoc = "../../docs/flags.md"

// TestDocsNameEveryFlag: docs/flags.md names every command (as `postern
// NAME`, subcommands with their parent) and every flag each one takes, so a
// flag cannot be added, or renamed, without its documentation.
func TestDocsNameEveryFlag(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(flagsDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	app := newApp(strings.NewReader(""), io.Discard, io.Discard)
	var check func(path string, cmds []*cli.Command)
	check = func(path string, cmds []*cli.Command) {
		for _, cmd := range cmds {
			if cmd.Name == "help" || cmd.Hidden { // hidden: a build step, not for administrators
				continue
			}
			name := path + " " + cmd.Name
			if !strings.Contains(doc, name) {
				t.Errorf("%s does not name the command %q", flagsDoc, name)
			}
			for _, f := range cmd.Flags {
				flag := f.Names()[0]
				if flag == "help" {
					continue
				}
				// "--name" not followed by more of a flag name, so
				// --limit-file does not stand in for --limit.
				if !regexp.MustCompile(`--` + regexp.QuoteMeta(flag) + `([^a-z0-9-]|$)`).MatchString(doc) {
					t.Errorf("%s does not name --%s (of %q)", flagsDoc, flag, name)
				}
			}
			check(name, cmd.Subcommands)
		}
	}
	check("postern", app.Commands)
}
