// Package cli is Postern's command line: an app of commands, each with
// flags that have environment twins, and help listing them. It replaces
// urfave/cli/v2, keeping the subset Postern used and its behaviour, for one
// reason: urfave imports text/template, whose reflect.Value.MethodByName
// makes the Go linker keep every exported method of every reachable type
// (go-redis's hundreds of Cmdable methods alone are 4 MB), and the Docker
// image must stay under 25 MB. So: no text/template and no MethodByName in
// here (help is written with fmt and text/tabwriter).
package cli

import (
	"context"
	"fmt"
	"io"
	"os"
)

// App is the program: its commands and where they read and write.
type App struct {
	Name    string
	Usage   string
	Version string
	// Reader, Writer and ErrWriter default to os.Stdin, os.Stdout and
	// os.Stderr; the help goes to Writer.
	Reader    io.Reader
	Writer    io.Writer
	ErrWriter io.Writer
	// LookupEnv reads the flags' environment variables (nil: os.LookupEnv).
	LookupEnv func(string) (string, bool)
	Commands  []*Command
}

// Command is one subcommand.
type Command struct {
	Name      string
	Usage     string
	ArgsUsage string // the arguments after the flags, e.g. "LOGIN"; empty: none allowed
	Flags     []Flag
	// Before runs after the flags are parsed, before Action (e.g. to fill
	// unset flags from a config file).
	Before func(*Context) error
	Action func(*Context) error
}

// ExitCoder is an error that sets the process's exit code.
type ExitCoder interface {
	error
	ExitCode() int
}

type exitError struct {
	msg  string
	code int
}

func (e *exitError) Error() string { return e.msg }
func (e *exitError) ExitCode() int { return e.code }

// Exit returns an error with an exit code, for main to exit with.
func Exit(msg string, code int) ExitCoder { return &exitError{msg, code} }

// usageExitCode is the exit code of a command line that cannot be run: an
// unknown command or flag, a bad flag value, wrong arguments (2, like Go's
// flag package and most Unix tools).
const usageExitCode = 2

func usageErrorf(format string, a ...any) ExitCoder {
	return Exit(fmt.Sprintf(format, a...), usageExitCode)
}

// Run runs the command args names (args[0] is the program). It never
// exits: an error carries its exit code (ExitCoder) and main exits.
//
//	postern [--help|-h] [--version|-v] [COMMAND [FLAGS] [ARGS]]
//	postern help [COMMAND]      same as postern COMMAND --help
//	postern COMMAND help        same
func (a *App) Run(ctx context.Context, args []string) error {
	a.defaults()
	global := newFlagSet([]Flag{&BoolFlag{Name: "version"}, &BoolFlag{Name: "v"}})
	var rest []string
	var help bool
	var err error
	if len(args) > 0 {
		if rest, help, err = global.parseArgs(args[1:]); err != nil {
			return usageErrorf("%v (%s --help lists the commands and options)", err, a.Name)
		}
	}
	switch {
	case help:
		return a.writeHelp()
	case global.byName["version"].v.(bool) || global.byName["v"].v.(bool):
		_, err := fmt.Fprintf(a.Writer, "%s version %s\n", a.Name, a.Version)
		return err
	case len(rest) == 0:
		return a.writeHelp()
	case rest[0] == "help" || rest[0] == "h":
		if len(rest) == 1 {
			return a.writeHelp()
		}
		cmd, err := a.command(rest[1])
		if err != nil {
			return err
		}
		return a.writeCommandHelp(cmd)
	}
	cmd, err := a.command(rest[0])
	if err != nil {
		return err
	}
	return a.runCommand(ctx, cmd, rest[1:])
}

func (a *App) defaults() {
	if a.Reader == nil {
		a.Reader = os.Stdin
	}
	if a.Writer == nil {
		a.Writer = os.Stdout
	}
	if a.ErrWriter == nil {
		a.ErrWriter = os.Stderr
	}
	if a.LookupEnv == nil {
		a.LookupEnv = os.LookupEnv
	}
}

func (a *App) command(name string) (*Command, error) {
	for _, c := range a.Commands {
		if c.Name == name {
			return c, nil
		}
	}
	return nil, usageErrorf("unknown command %q (%s --help lists them)", name, a.Name)
}

func (a *App) runCommand(ctx context.Context, cmd *Command, args []string) error {
	fs := newFlagSet(cmd.Flags)
	if err := fs.applyEnv(a.LookupEnv); err != nil {
		return a.commandError(cmd, err)
	}
	rest, help, err := fs.parseArgs(args)
	if err != nil {
		return a.commandError(cmd, err)
	}
	if help || (len(rest) > 0 && (rest[0] == "help" || rest[0] == "h")) {
		return a.writeCommandHelp(cmd)
	}
	if len(rest) > 0 && cmd.ArgsUsage == "" {
		return a.commandError(cmd, usageErrorf("unexpected argument %q (flags go before arguments)", rest[0]))
	}
	c := &Context{Context: ctx, App: a, Command: cmd, flags: fs, args: rest}
	if cmd.Before != nil {
		if err := cmd.Before(c); err != nil {
			return err
		}
	}
	if cmd.Action == nil {
		return nil
	}
	return cmd.Action(c)
}

// commandError names the command and where its flags are listed.
func (a *App) commandError(cmd *Command, err error) error {
	return usageErrorf("%s: %v (%s %s --help lists the flags)", cmd.Name, err, a.Name, cmd.Name)
}
