package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// The command line's user-visible rules, ported from internal/cli's tests
// when Postern went back to urfave/cli/v2: flag spellings, arguments,
// environment twins, usage errors (exit 2, one line naming the mistake) and
// help.

// testFlags has one flag of each kind Postern uses, each with an env twin.
func testFlags() []cli.Flag {
	return []cli.Flag{
		str("str", "dflt", "a string"),
		strs("list", []string{"a", "b"}, "a list"),
		&cli.IntFlag{Name: "int", Value: 4, DefaultText: "four", Usage: "an int", EnvVars: env("int")},
		&cli.Int64Flag{Name: "int64", Value: 1 << 40, Usage: "an int64", EnvVars: env("int64")},
		&cli.BoolFlag{Name: "bool", Usage: "a bool", EnvVars: env("bool")},
		dur("dur", time.Minute, "a duration"),
	}
}

// runTest runs `postern args...` with two test commands, cmd (no
// arguments) and args (takes LOGIN), and env as the POSTERN_* variables; it
// returns the context the action saw (nil: it did not run).
func runTest(t *testing.T, env map[string]string, args ...string) (*cli.Context, string, error) {
	t.Helper()
	var got *cli.Context
	keep := func(c *cli.Context) error { got = c; return nil }
	out, err := runApp(t, env, []*cli.Command{
		{Name: "cmd", Usage: "the command", Flags: testFlags(), Action: keep},
		{Name: "args", Usage: "takes arguments", ArgsUsage: "LOGIN", Flags: testFlags(), Action: keep},
		helpCommand(),
	}, args...)
	return got, out, err
}

func mustRun(t *testing.T, env map[string]string, args ...string) *cli.Context {
	t.Helper()
	c, out, err := runTest(t, env, args...)
	if err != nil {
		t.Fatalf("%q: %v\n%s", args, err, out)
	}
	if c == nil {
		t.Fatalf("%q: the action did not run:\n%s", args, out)
	}
	return c
}

// wantUsageError checks that err is a usage error (exit code 2), one line
// naming want.
func wantUsageError(t *testing.T, args []string, err error, want string) {
	t.Helper()
	ec, ok := err.(cli.ExitCoder)
	if !ok || ec.ExitCode() != usageExitCode {
		t.Fatalf("%q: error %v, want a usage error with exit code 2", args, err)
	}
	if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("%q: error %q is not one line naming %q", args, err, want)
	}
}

func TestCLIDefaults(t *testing.T) {
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
}

// TestCLIFlagForms: -name and --name, a value after "=" or as the next
// argument whatever it looks like; the last of a repeated flag wins.
func TestCLIFlagForms(t *testing.T) {
	for _, args := range [][]string{{"--str", "x"}, {"--str=x"}, {"-str", "x"}, {"-str=x"}} {
		if c := mustRun(t, nil, append([]string{"cmd"}, args...)...); c.String("str") != "x" || !c.IsSet("str") {
			t.Errorf("%q: str=%q set=%v", args, c.String("str"), c.IsSet("str"))
		}
	}
	if c := mustRun(t, nil, "cmd", "--str", "--bool"); c.String("str") != "--bool" || c.Bool("bool") {
		t.Errorf("--str --bool: str=%q bool=%v", c.String("str"), c.Bool("bool"))
	}
	if c := mustRun(t, nil, "cmd", "--str=a=b"); c.String("str") != "a=b" {
		t.Errorf("--str=a=b: %q", c.String("str"))
	}
	if c := mustRun(t, nil, "cmd", "--int", "1", "--int=0x10"); c.Int("int") != 16 {
		t.Errorf("--int 1 --int=0x10: %d", c.Int("int"))
	}
	if c := mustRun(t, nil, "cmd", "--dur", "1h30m", "--int64", "-5"); c.Duration("dur") != 90*time.Minute || c.Int64("int64") != -5 {
		t.Errorf("dur=%s int64=%d", c.Duration("dur"), c.Int64("int64"))
	}
	for _, tt := range []struct {
		args []string
		want bool
	}{
		{[]string{"--bool"}, true}, {[]string{"-bool"}, true}, {[]string{"--bool=true"}, true},
		{[]string{"--bool=false"}, false}, {[]string{"--bool=0"}, false}, {[]string{"--bool", "--bool=false"}, false},
	} {
		if c := mustRun(t, nil, append([]string{"cmd"}, tt.args...)...); c.Bool("bool") != tt.want || !c.IsSet("bool") {
			t.Errorf("%q: %v, want %v", tt.args, c.Bool("bool"), tt.want)
		}
	}
	// A bool flag takes no separate value: "false" is the first argument.
	if c := mustRun(t, nil, "args", "--bool", "false"); !c.Bool("bool") || c.Args().First() != "false" {
		t.Errorf("--bool false: bool=%v args=%q", c.Bool("bool"), c.Args().Slice())
	}
}

// TestCLIArguments: flags stop at the first argument and after "--".
func TestCLIArguments(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string
		str  string
	}{
		{[]string{"alice"}, []string{"alice"}, "dflt"},
		{[]string{"--str", "x", "alice", "--str", "y"}, []string{"alice", "--str", "y"}, "x"},
		{[]string{"--", "--str"}, []string{"--str"}, "dflt"},
		{[]string{"-", "b"}, []string{"-", "b"}, "dflt"},
	} {
		c := mustRun(t, nil, append([]string{"args"}, tt.args...)...)
		if !slices.Equal(c.Args().Slice(), tt.want) || c.NArg() != len(tt.want) || c.String("str") != tt.str {
			t.Errorf("%q: args %q str %q, want %q %q", tt.args, c.Args().Slice(), c.String("str"), tt.want, tt.str)
		}
	}
}

// TestCLIUsageErrors: every command line that cannot run is a usage error,
// one line naming the flag, argument or command, and nothing runs.
func TestCLIUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"cmd", "--no-such-flag"}, "cmd: flag provided but not defined: -no-such-flag"},
		{[]string{"cmd", "-no-such-flag=1"}, "-no-such-flag"},
		{[]string{"cmd", "--str"}, "flag needs an argument: -str"},
		{[]string{"cmd", "--int", "many"}, `invalid value "many" for flag -int`},
		{[]string{"cmd", "--int", "99999999999999999999"}, `invalid value "99999999999999999999" for flag -int`},
		{[]string{"cmd", "--dur=5"}, `invalid value "5" for flag -dur`},
		{[]string{"cmd", "--bool=maybe"}, `invalid boolean value "maybe" for -bool`},
		{[]string{"cmd", "---str=x"}, "bad flag syntax: ---str=x"},
		{[]string{"cmd", "stray"}, `cmd: unexpected argument "stray"`},
		{[]string{"cmd", "--str", "x", "stray", "--int", "1"}, `unexpected argument "stray"`},
		{[]string{"no-such-command"}, `unknown command "no-such-command"`},
		{[]string{"help", "no-such-command"}, `unknown command "no-such-command"`},
		{[]string{"--no-such-flag", "cmd"}, "-no-such-flag"},
	} {
		c, _, err := runTest(t, nil, tt.args...)
		if c != nil {
			t.Errorf("%q: the action ran", tt.args)
		}
		wantUsageError(t, tt.args, err, tt.want)
	}
	// A bad environment variable is one too, naming it.
	for name, val := range map[string]string{"POSTERN_INT": "x", "POSTERN_BOOL": "yes please", "POSTERN_DUR": "5", "POSTERN_INT64": "1e3"} {
		c, _, err := runTest(t, map[string]string{name: val}, "cmd")
		if c != nil {
			t.Errorf("%s=%s: the action ran", name, val)
		}
		wantUsageError(t, []string{name + "=" + val}, err, name)
	}
}

// TestCLIEnvironment: the env twin sets the flag and IsSet; the command line
// wins over it, and a list from the command line replaces the env's list.
func TestCLIEnvironment(t *testing.T) {
	env := map[string]string{
		"POSTERN_STR": "from-env", "POSTERN_LIST": " x, y ,z ", "POSTERN_INT": "7", "POSTERN_INT64": "8",
		"POSTERN_BOOL": "true", "POSTERN_DUR": "2s",
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
	if c := mustRun(t, nil, "cmd", "--list", "c"); !slices.Equal(c.StringSlice("list"), []string{"c"}) {
		t.Errorf("--list c over the default: %q", c.StringSlice("list"))
	}
	// An empty variable sets a string to "" and a bool to false, and is
	// ignored for numbers (compose files write POSTERN_TLS_CERT: "").
	c = mustRun(t, map[string]string{"POSTERN_STR": "", "POSTERN_INT": "", "POSTERN_BOOL": "", "POSTERN_DUR": ""}, "cmd")
	if c.String("str") != "" || !c.IsSet("str") || c.Bool("bool") || !c.IsSet("bool") {
		t.Errorf("empty env: str %q/%v bool %v/%v", c.String("str"), c.IsSet("str"), c.Bool("bool"), c.IsSet("bool"))
	}
	if c.Int("int") != 4 || c.Duration("dur") != time.Minute {
		t.Errorf("empty env set a number: %d %s", c.Int("int"), c.Duration("dur"))
	}
}

// TestCLIHelp: every way to ask shows the same help, in urfave/cli's
// layout, and nothing runs; the app's help lists the commands.
func TestCLIHelp(t *testing.T) {
	_, want, err := runTest(t, nil, "cmd", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"cmd", "-h"}, {"cmd", "--str", "x", "-help"}, {"help", "cmd"}, {"h", "cmd"}, {"cmd", "help"}, {"cmd", "h"}} {
		c, out, err := runTest(t, nil, args...)
		if err != nil || c != nil || out != want {
			t.Errorf("%q: err %v, ran %v, output:\n%s\nwant:\n%s", args, err, c != nil, out, want)
		}
	}
	const help = `NAME:
   postern cmd - the command

USAGE:
   postern cmd [command options]

OPTIONS:
   --str value                    a string (default: "dflt") [$POSTERN_STR]
   --list value [ --list value ]  a list (default: "a", "b") [$POSTERN_LIST]
   --int value                    an int (default: four) [$POSTERN_INT]
   --int64 value                  an int64 (default: 1099511627776) [$POSTERN_INT64]
   --bool                         a bool (default: false) [$POSTERN_BOOL]
   --dur value                    a duration (default: 1m0s) [$POSTERN_DUR]
   --help, -h                     show help
`
	if want != help {
		t.Errorf("help:\n%s\nwant:\n%s", want, help)
	}
	if _, out, _ := runTest(t, nil, "args", "-h"); !strings.Contains(out, "postern args [command options] LOGIN") {
		t.Errorf("args help has no LOGIN:\n%s", out)
	}
	for _, args := range [][]string{nil, {"--help"}, {"-h"}, {"help"}, {"h"}} {
		c, out, err := runTest(t, nil, args...)
		sq := strings.Join(strings.Fields(out), " ")
		if err != nil || c != nil || !strings.Contains(out, "COMMANDS:") || !strings.Contains(sq, "cmd the command") ||
			!strings.Contains(sq, "help, h Shows a list of commands or help for one command") ||
			!strings.Contains(sq, "GLOBAL OPTIONS: --help, -h show help --version, -v print the version") {
			t.Errorf("%q: err %v, output:\n%s", args, err, out)
		}
	}
	for _, args := range [][]string{{"--version"}, {"-v"}, {"--version", "cmd"}} {
		if c, out, err := runTest(t, nil, args...); err != nil || c != nil || out != "postern version "+version+"\n" {
			t.Errorf("%q: err %v, output %q", args, err, out)
		}
	}
}
