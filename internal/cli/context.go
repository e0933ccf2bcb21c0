package cli

import (
	"context"
	"fmt"
	"time"
)

// Context is one run of a command: its flag values and arguments.
type Context struct {
	Context context.Context
	App     *App
	Command *Command
	flags   *flagSet
	args    Args
}

// Args are the arguments after the flags.
type Args []string

// First returns the first argument, or "".
func (a Args) First() string {
	if len(a) == 0 {
		return ""
	}
	return a[0]
}

// Present reports whether there is an argument.
func (a Args) Present() bool { return len(a) > 0 }

// Slice returns the arguments.
func (a Args) Slice() []string { return append([]string(nil), a...) }

// Args returns the arguments after the flags.
func (c *Context) Args() Args { return c.args }

// NArg returns the number of arguments after the flags.
func (c *Context) NArg() int { return len(c.args) }

// The typed getters return the zero value for a name the command does not
// define or a flag of another type, as urfave/cli did.

// String returns a string flag's value.
func (c *Context) String(name string) string {
	s, _ := c.get(name).(string)
	return s
}

// StringSlice returns a slice flag's items.
func (c *Context) StringSlice(name string) []string {
	l, _ := c.get(name).([]string)
	return append([]string(nil), l...)
}

// Int returns an int flag's value.
func (c *Context) Int(name string) int {
	n, _ := c.get(name).(int)
	return n
}

// Int64 returns an int64 flag's value.
func (c *Context) Int64(name string) int64 {
	n, _ := c.get(name).(int64)
	return n
}

// Bool returns a bool flag's value.
func (c *Context) Bool(name string) bool {
	b, _ := c.get(name).(bool)
	return b
}

// Duration returns a duration flag's value.
func (c *Context) Duration(name string) time.Duration {
	d, _ := c.get(name).(time.Duration)
	return d
}

func (c *Context) get(name string) any {
	if v := c.flags.byName[name]; v != nil {
		return v.v
	}
	return nil
}

// IsSet reports whether the flag was given on the command line or in its
// environment variable, or by Set.
func (c *Context) IsSet(name string) bool {
	v := c.flags.byName[name]
	return v != nil && v.set
}

// Set sets a flag from its text form, as if given on the command line (a
// slice flag's first Set replaces the default).
func (c *Context) Set(name, text string) error {
	v := c.flags.byName[name]
	if v == nil {
		return fmt.Errorf("no flag --%s", name)
	}
	if err := v.parse(text); err != nil {
		return fmt.Errorf("invalid value %q for --%s: %w", text, name, err)
	}
	return nil
}

// NewContext returns a context of parent's command with flags set from args
// alone: the environment is not read. It is for a command that builds what
// another builds with chosen settings (`demo` runs serve's setup).
func NewContext(parent *Context, flags []Flag, args []string) (*Context, error) {
	fs := newFlagSet(flags)
	rest, help, err := fs.parseArgs(args)
	if err != nil {
		return nil, err
	}
	if help || len(rest) > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", args)
	}
	return &Context{
		Context: parent.Context,
		App:     parent.App,
		Command: &Command{Name: parent.Command.Name, Flags: flags},
		flags:   fs,
	}, nil
}
