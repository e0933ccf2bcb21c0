package cli

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// testFlags has one flag of each kind, each with an env twin TEST_<NAME>.
func testFlags() []Flag {
	return []Flag{
		&StringFlag{Name: "str", Value: "dflt", Usage: "a string", EnvVars: []string{"TEST_STR"}},
		&StringSliceFlag{Name: "list", Value: NewStringSlice("a", "b"), Usage: "a list", EnvVars: []string{"TEST_LIST"}},
		&IntFlag{Name: "int", Value: 4, DefaultText: "four", Usage: "an int", EnvVars: []string{"TEST_INT"}},
		&Int64Flag{Name: "int64", Value: 1 << 40, Usage: "an int64", EnvVars: []string{"TEST_INT64"}},
		&BoolFlag{Name: "bool", Usage: "a bool", EnvVars: []string{"TEST_BOOL"}},
		&DurationFlag{Name: "dur", Value: time.Minute, Usage: "a duration", EnvVars: []string{"TEST_DUR"}},
	}
}

// run runs `prog args...` with env as the whole environment and returns
// the context the command's action saw, what it wrote, and the error.
func run(t *testing.T, env map[string]string, args ...string) (*Context, string, error) {
	t.Helper()
	var got *Context
	var out bytes.Buffer
	app := &App{
		Name:      "prog",
		Usage:     "a test program",
		Version:   "1.2.3",
		Writer:    &out,
		ErrWriter: &out,
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Commands: []*Command{
			{Name: "cmd", Usage: "the command", Flags: testFlags(), Action: func(c *Context) error { got = c; return nil }},
			{Name: "args", Usage: "takes arguments", ArgsUsage: "LOGIN", Flags: testFlags(), Action: func(c *Context) error { got = c; return nil }},
		},
	}
	err := app.Run(context.Background(), append([]string{"prog"}, args...))
	return got, out.String(), err
}

func mustRun(t *testing.T, env map[string]string, args ...string) *Context {
	t.Helper()
	c, out, err := run(t, env, args...)
	if err != nil {
		t.Fatalf("%q: %v\n%s", args, err, out)
	}
	if c == nil {
		t.Fatalf("%q: the action did not run:\n%s", args, out)
	}
	return c
}

// usageError checks that err is a usage error (exit code 2) naming want.
func usageError(t *testing.T, err error, want string) {
	t.Helper()
	var ec ExitCoder
	if !errors.As(err, &ec) || ec.ExitCode() != 2 {
		t.Fatalf("error %v, want a usage error with exit code 2", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name %q", err, want)
	}
}

func TestDefaults(t *testing.T) {
	c := mustRun(t, nil, "cmd")
	if c.String("str") != "dflt" || !slices.Equal(c.StringSlice("list"), []string{"a", "b"}) || c.Int("int") != 4 ||
		c.Int64("int64") != 1<<40 || c.Bool("bool") || c.Duration("dur") != time.Minute {
		t.Fatalf("defaults: %q %q %d %d %v %s", c.String("str"), c.StringSlice("list"), c.Int("int"), c.Int64("int64"), c.Bool("bool"), c.Duration("dur"))
	}
	for _, n := range []string{"str", "list", "int", "int64", "bool", "dur"} {
		if c.IsSet(n) {
			t.Errorf("IsSet(%q) with no flag and no env", n)
		}
	}
	// Names the command does not define, or of another type, give the
	// zero value (as urfave/cli did).
	if c.String("nope") != "" || c.Int("str") != 0 || c.IsSet("nope") {
		t.Fatal("unknown names are not zero")
	}
}

// TestFlagForms: every spelling urfave/cli (Go's flag package) accepted.
func TestFlagForms(t *testing.T) {
	for _, args := range [][]string{
		{"--str", "x"}, {"--str=x"}, {"-str", "x"}, {"-str=x"},
	} {
		if c := mustRun(t, nil, append([]string{"cmd"}, args...)...); c.String("str") != "x" || !c.IsSet("str") {
			t.Errorf("%q: str=%q set=%v", args, c.String("str"), c.IsSet("str"))
		}
	}
	// A value is the next argument whatever it looks like.
	if c := mustRun(t, nil, "cmd", "--str", "--bool"); c.String("str") != "--bool" || c.Bool("bool") {
		t.Errorf("--str --bool: str=%q bool=%v", c.String("str"), c.Bool("bool"))
	}
	// Values may hold "=" and be empty.
	if c := mustRun(t, nil, "cmd", "--str=a=b"); c.String("str") != "a=b" {
		t.Errorf("--str=a=b: %q", c.String("str"))
	}
	if c := mustRun(t, nil, "cmd", "--str="); c.String("str") != "" || !c.IsSet("str") {
		t.Errorf("--str=: %q", c.String("str"))
	}
	// The last of a repeated flag wins.
	if c := mustRun(t, nil, "cmd", "--int", "1", "--int=0x10"); c.Int("int") != 16 {
		t.Errorf("--int 1 --int=0x10: %d", c.Int("int"))
	}
	if c := mustRun(t, nil, "cmd", "--dur", "1h30m", "--int64", "-5"); c.Duration("dur") != 90*time.Minute || c.Int64("int64") != -5 {
		t.Errorf("dur=%s int64=%d", c.Duration("dur"), c.Int64("int64"))
	}
}

func TestBoolForms(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want bool
	}{
		{[]string{"--bool"}, true},
		{[]string{"-bool"}, true},
		{[]string{"--bool=true"}, true},
		{[]string{"--bool=false"}, false},
		{[]string{"--bool=0"}, false},
		{[]string{"--bool=1"}, true},
		{[]string{"--bool", "--bool=false"}, false},
	} {
		c := mustRun(t, nil, append([]string{"cmd"}, tt.args...)...)
		if c.Bool("bool") != tt.want || !c.IsSet("bool") {
			t.Errorf("%q: %v, want %v", tt.args, c.Bool("bool"), tt.want)
		}
	}
	// A bool flag takes no separate value: "false" is the first argument.
	c := mustRun(t, nil, "args", "--bool", "false")
	if !c.Bool("bool") || c.Args().First() != "false" {
		t.Errorf("--bool false: bool=%v args=%q", c.Bool("bool"), c.Args())
	}
	_, _, err := run(t, nil, "cmd", "--bool=maybe")
	usageError(t, err, `invalid value "maybe" for flag --bool`)
}

func TestUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"cmd", "--no-such-flag"}, "unknown flag --no-such-flag"},
		{[]string{"cmd", "-no-such-flag=1"}, "unknown flag -no-such-flag"},
		{[]string{"cmd", "--str"}, "flag --str needs a value"},
		{[]string{"cmd", "--int", "many"}, `invalid value "many" for flag --int`},
		{[]string{"cmd", "--int", "99999999999999999999"}, "out of range"},
		{[]string{"cmd", "--dur=5"}, `invalid value "5" for flag --dur`},
		{[]string{"cmd", "---str=x"}, "bad flag syntax: ---str=x"},
		{[]string{"cmd", "-=x"}, "bad flag syntax"},
		{[]string{"cmd", "stray"}, `unexpected argument "stray"`},
		{[]string{"no-such-command"}, `unknown command "no-such-command"`},
		{[]string{"help", "no-such-command"}, `unknown command "no-such-command"`},
		{[]string{"--no-such-flag", "cmd"}, "unknown flag --no-such-flag"},
	} {
		c, _, err := run(t, nil, tt.args...)
		if c != nil {
			t.Errorf("%q: the action ran", tt.args)
		}
		usageError(t, err, tt.want)
	}
	// The error names the command whose flag it is.
	_, _, err := run(t, nil, "cmd", "--nope")
	usageError(t, err, "cmd: unknown flag --nope (prog cmd --help lists the flags)")
}

// TestArguments: flags stop at the first argument, at "-" and after "--";
// flags after an argument are arguments (Go's flag package).
func TestArguments(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string
		str  string
	}{
		{[]string{"alice"}, []string{"alice"}, "dflt"},
		{[]string{"--str", "x", "alice", "--str", "y"}, []string{"alice", "--str", "y"}, "x"},
		{[]string{"--", "--str"}, []string{"--str"}, "dflt"},
		{[]string{"-", "b"}, []string{"-", "b"}, "dflt"},
		{[]string{"--str=x", "--", "--", "-h"}, []string{"--", "-h"}, "x"},
	} {
		c := mustRun(t, nil, append([]string{"args"}, tt.args...)...)
		if !slices.Equal(c.Args().Slice(), tt.want) || c.NArg() != len(tt.want) || c.String("str") != tt.str {
			t.Errorf("%q: args %q str %q, want %q %q", tt.args, c.Args(), c.String("str"), tt.want, tt.str)
		}
	}
	if c := mustRun(t, nil, "args"); c.Args().Present() || c.Args().First() != "" || c.NArg() != 0 {
		t.Errorf("no arguments: %q", c.Args())
	}
}

// TestEnvironment: the env twin sets the flag and IsSet; the command line
// wins over it.
func TestEnvironment(t *testing.T) {
	env := map[string]string{
		"TEST_STR": "from-env", "TEST_LIST": " x, y ,,z ", "TEST_INT": "7", "TEST_INT64": "8",
		"TEST_BOOL": "true", "TEST_DUR": "2s",
	}
	c := mustRun(t, env, "cmd")
	if c.String("str") != "from-env" || !slices.Equal(c.StringSlice("list"), []string{"x", "y", "z"}) || c.Int("int") != 7 ||
		c.Int64("int64") != 8 || !c.Bool("bool") || c.Duration("dur") != 2*time.Second {
		t.Fatalf("from env: %q %q %d %d %v %s", c.String("str"), c.StringSlice("list"), c.Int("int"), c.Int64("int64"), c.Bool("bool"), c.Duration("dur"))
	}
	for _, n := range []string{"str", "list", "int", "int64", "bool", "dur"} {
		if !c.IsSet(n) {
			t.Errorf("IsSet(%q) false with its env var", n)
		}
	}
	c = mustRun(t, env, "cmd", "--str", "flag", "--list", "p", "--list", "q,r", "--int=1", "--bool=false", "--dur", "3s")
	if c.String("str") != "flag" || !slices.Equal(c.StringSlice("list"), []string{"p", "q", "r"}) || c.Int("int") != 1 ||
		c.Bool("bool") || c.Duration("dur") != 3*time.Second || c.Int64("int64") != 8 {
		t.Fatalf("flags over env: %q %q %d %v %s", c.String("str"), c.StringSlice("list"), c.Int("int"), c.Bool("bool"), c.Duration("dur"))
	}
	// The command line replaces the default list too.
	if c := mustRun(t, nil, "cmd", "--list", "c"); !slices.Equal(c.StringSlice("list"), []string{"c"}) {
		t.Errorf("--list c over the default: %q", c.StringSlice("list"))
	}
}

// TestEnvironmentEmpty: an empty variable sets a string to "", a bool to
// false and a list to empty, and is ignored for numbers (urfave/cli's rules;
// compose files write POSTERN_TLS_CERT: "" to clear a setting).
func TestEnvironmentEmpty(t *testing.T) {
	env := map[string]string{"TEST_STR": "", "TEST_LIST": "", "TEST_INT": "", "TEST_INT64": "", "TEST_BOOL": "", "TEST_DUR": ""}
	c := mustRun(t, env, "cmd")
	if c.String("str") != "" || !c.IsSet("str") || len(c.StringSlice("list")) != 0 || !c.IsSet("list") ||
		c.Bool("bool") || !c.IsSet("bool") {
		t.Errorf("empty env: str %q/%v list %q/%v bool %v/%v", c.String("str"), c.IsSet("str"), c.StringSlice("list"), c.IsSet("list"), c.Bool("bool"), c.IsSet("bool"))
	}
	if c.Int("int") != 4 || c.IsSet("int") || c.Int64("int64") != 1<<40 || c.IsSet("int64") || c.Duration("dur") != time.Minute || c.IsSet("dur") {
		t.Errorf("empty env set a number: %d %d %s", c.Int("int"), c.Int64("int64"), c.Duration("dur"))
	}
}

func TestEnvironmentBadValue(t *testing.T) {
	for name, val := range map[string]string{"TEST_INT": "x", "TEST_BOOL": "yes please", "TEST_DUR": "5", "TEST_INT64": "1e3"} {
		_, _, err := run(t, map[string]string{name: val}, "cmd")
		usageError(t, err, "environment variable "+name+"=")
	}
}

// TestSet: what a config file does, filling only flags not set by flag or
// env; a list's first Set replaces its default.
func TestSet(t *testing.T) {
	c := mustRun(t, map[string]string{"TEST_INT": "7"}, "cmd", "--str", "flag")
	if c.IsSet("list") {
		t.Fatal("list set")
	}
	for _, item := range []string{"l1", "l2,l3"} {
		if err := c.Set("list", item); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Set("dur", "1s"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.StringSlice("list"), []string{"l1", "l2", "l3"}) || !c.IsSet("list") || c.Duration("dur") != time.Second {
		t.Errorf("after Set: %q %s", c.StringSlice("list"), c.Duration("dur"))
	}
	if err := c.Set("int", "nine"); err == nil || !strings.Contains(err.Error(), `"nine"`) {
		t.Errorf("Set int nine: %v", err)
	}
	if err := c.Set("nope", "1"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("Set nope: %v", err)
	}
	// StringSlice returns a copy: the caller cannot change the flag.
	c.StringSlice("list")[0] = "changed"
	if c.StringSlice("list")[0] != "l1" {
		t.Error("StringSlice shares the flag's list")
	}
}

// TestNewContext: demo's way to run serve's setup with chosen flags; the
// environment is not read.
func TestNewContext(t *testing.T) {
	parent := mustRun(t, map[string]string{"TEST_STR": "env"}, "cmd")
	c, err := NewContext(parent, testFlags(), []string{"--int", "9", "--list", "n"})
	if err != nil {
		t.Fatal(err)
	}
	if c.String("str") != "dflt" || c.Int("int") != 9 || !slices.Equal(c.StringSlice("list"), []string{"n"}) || c.App != parent.App {
		t.Errorf("NewContext: %q %d %q", c.String("str"), c.Int("int"), c.StringSlice("list"))
	}
	if _, err := NewContext(parent, testFlags(), []string{"--nope"}); err == nil {
		t.Error("NewContext accepted an unknown flag")
	}
	if _, err := NewContext(parent, testFlags(), []string{"stray"}); err == nil {
		t.Error("NewContext accepted an argument")
	}
}

// TestHelp: every way to ask shows the same help, which lists each flag
// with its usage, default and environment variable; nothing runs.
func TestHelp(t *testing.T) {
	_, want, err := run(t, nil, "cmd", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"cmd", "-h"}, {"cmd", "--str", "x", "-help"}, {"help", "cmd"}, {"h", "cmd"}, {"cmd", "help"}} {
		c, out, err := run(t, nil, args...)
		if err != nil || c != nil || out != want {
			t.Errorf("%q: err %v, ran %v, output:\n%s\nwant:\n%s", args, err, c != nil, out, want)
		}
	}
	// urfave/cli's layout: one aligned line per flag.
	const help = `NAME:
   prog cmd - the command

USAGE:
   prog cmd [command options]

OPTIONS:
   --str value                    a string (default: "dflt") [$TEST_STR]
   --list value [ --list value ]  a list (default: "a", "b") [$TEST_LIST]
   --int value                    an int (default: four) [$TEST_INT]
   --int64 value                  an int64 (default: 1099511627776) [$TEST_INT64]
   --bool                         a bool (default: false) [$TEST_BOOL]
   --dur value                    a duration (default: 1m0s) [$TEST_DUR]
   --help, -h                     show help
`
	if want != help {
		t.Errorf("help:\n%s\nwant:\n%s", want, help)
	}
	// The error of a bad flag wins over --help, as with urfave/cli.
	if _, _, err := run(t, nil, "cmd", "--help", "--nope"); err == nil {
		t.Error("--help --nope: no error")
	}
	_, out, _ := run(t, nil, "args", "-h")
	if !strings.Contains(out, "prog args [command options] LOGIN") {
		t.Errorf("args help has no LOGIN:\n%s", out)
	}
}

// squeeze collapses runs of spaces (the help aligns its columns).
func squeeze(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

func TestAppHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{nil, {"--help"}, {"-h"}, {"help"}, {"h"}} {
		c, out, err := run(t, nil, args...)
		if err != nil || c != nil || !strings.Contains(out, "COMMANDS:") || !strings.Contains(squeeze(out), "cmd the command") ||
			!strings.Contains(squeeze(out), "args takes arguments") {
			t.Errorf("%q: err %v, output:\n%s", args, err, out)
		}
	}
	for _, args := range [][]string{{"--version"}, {"-v"}, {"--version", "cmd"}} {
		c, out, err := run(t, nil, args...)
		if err != nil || c != nil || out != "prog version 1.2.3\n" {
			t.Errorf("%q: err %v, output %q", args, err, out)
		}
	}
}

func TestExit(t *testing.T) {
	err := error(Exit("usage: x", 3))
	var ec ExitCoder
	if !errors.As(err, &ec) || ec.ExitCode() != 3 || err.Error() != "usage: x" {
		t.Fatalf("Exit: %v", err)
	}
}
