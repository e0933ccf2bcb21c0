package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// runApp runs the app in-process with env as the only POSTERN_* variables
// of the environment (urfave/cli reads os.Environ; t.Setenv restores it).
func runApp(t *testing.T, env map[string]string, cmds []*cli.Command, args ...string) (string, error) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "POSTERN_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out bytes.Buffer
	app := newApp(strings.NewReader(""), &out, &out)
	if cmds != nil {
		for _, cmd := range cmds {
			strictUsage(cmd)
		}
		app.Commands = cmds
	}
	err := app.RunContext(context.Background(), append([]string{"postern"}, args...))
	return out.String(), err
}

// TestServeHelpListsEveryFlag: `serve --help` (and every command taking
// serve's flags) has one line per flag with its usage, default and
// environment variable; deploy/ tests and operators read them there.
func TestServeHelpListsEveryFlag(t *testing.T) {
	for _, cmd := range []string{"serve", "check-config", "dns-records", "status", "unsuspend"} {
		out, err := runApp(t, nil, nil, cmd, "--help")
		if err != nil {
			t.Fatalf("%s --help: %v", cmd, err)
		}
		lines := map[string]string{}
		for _, l := range strings.Split(out, "\n") {
			if m := regexp.MustCompile(`^   --([a-z0-9-]+)`).FindStringSubmatch(l); m != nil {
				lines[m[1]] = strings.Join(strings.Fields(l), " ")
			}
		}
		flags := serveFlags()
		extra := 0
		if cmd == "check-config" {
			extra = 1 // --strict
		}
		if len(lines) != len(flags)+1+extra { // + --help
			t.Errorf("%s --help lists %d flags, serve has %d:\n%s", cmd, len(lines)-1, len(flags), out)
		}
		for _, f := range flags {
			name := f.Names()[0]
			l, ok := lines[name]
			if !ok {
				t.Errorf("%s --help does not list --%s", cmd, name)
				continue
			}
			if want := "[$" + env(name)[0] + "]"; !strings.HasSuffix(l, want) {
				t.Errorf("%s --help: --%s does not end with %s: %q", cmd, name, want, l)
			}
			var usage, def string
			switch f := f.(type) {
			case *cli.StringFlag:
				usage, def = f.Usage, `"`+f.Value+`"`
				if f.Value == "" {
					def = ""
				}
			case *cli.StringSliceFlag:
				usage = f.Usage
				if f.Value != nil {
					def = `"` + strings.Join(f.Value.Value(), `", "`) + `"`
				}
			case *cli.IntFlag:
				usage, def = f.Usage, f.DefaultText
			case *cli.Int64Flag:
				usage = f.Usage
			case *cli.BoolFlag:
				usage, def = f.Usage, "false"
			case *cli.DurationFlag:
				usage, def = f.Usage, f.Value.String()
			}
			if !strings.Contains(l, strings.Join(strings.Fields(usage), " ")) {
				t.Errorf("%s --help: --%s lacks its usage: %q", cmd, name, l)
			}
			if def != "" && !strings.Contains(l, "(default: "+def+")") {
				t.Errorf("%s --help: --%s lacks (default: %s): %q", cmd, name, def, l)
			}
		}
	}
	for _, want := range []string{"(default: 52428800)", "(default: GOMAXPROCS, the CPUs Go uses)", `--listen value [ --listen value ]`} {
		if out, _ := runApp(t, nil, nil, "serve", "-h"); !strings.Contains(out, want) {
			t.Errorf("serve -h lacks %q", want)
		}
	}
}

// TestConfigFilePrecedence: the command line wins over POSTERN_* which win
// over the --config file, which wins over the defaults; a list from the
// environment is comma-separated, and the file's list replaces the default.
func TestConfigFilePrecedence(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "postern.toml")
	if err := os.WriteFile(conf, []byte(`upstream = "file:25"
received = "none"
max-recipients = 7
max-message-size = 1000
login-timeout = "9s"
pprof = true
listen = ["tls=:1465", "starttls=:1587"]
acme-domain = ["file.example"]
mynetworks = "10.0.0.0/8"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	var got *cli.Context
	cmd := &cli.Command{Name: "serve", Flags: serveFlags(), Before: applyConfigFile,
		Action: func(c *cli.Context) error { got = c; return nil }}
	env := map[string]string{
		"POSTERN_CONFIG":      conf,
		"POSTERN_RECEIVED":    "full",
		"POSTERN_UPSTREAM":    "env:25",
		"POSTERN_ACME_DOMAIN": "a.example, b.example",
		"POSTERN_PPROF":       "false",
	}
	if out, err := runApp(t, env, []*cli.Command{cmd}, "serve", "--upstream", "flag:25", "--max-recipients=3"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"upstream (flag over env and file)", strings.Join(got.StringSlice("upstream"), ","), "flag:25"},
		{"max-recipients (flag over file)", got.Int("max-recipients"), 3},
		{"received (env over file)", got.String("received"), "full"},
		{"pprof (env false over file true)", got.Bool("pprof"), false},
		{"max-message-size (file)", got.Int64("max-message-size"), int64(1000)},
		{"login-timeout (file)", got.Duration("login-timeout"), 9 * time.Second},
		{"mynetworks (file)", got.String("mynetworks"), "10.0.0.0/8"},
		{"hostname (default)", got.String("hostname"), ""},
		{"max-connections (default)", got.Int("max-connections"), 10000},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
	if l := got.StringSlice("acme-domain"); !slices.Equal(l, []string{"a.example", "b.example"}) {
		t.Errorf("acme-domain (env list over file): %q", l)
	}
	if l := got.StringSlice("listen"); !slices.Equal(l, []string{"tls=:1465", "starttls=:1587"}) {
		t.Errorf("listen (file over default): %q", l)
	}
	// An unknown key, or a bad value, in the file is an error naming it.
	if err := os.WriteFile(conf, []byte("max-recipients = \"many\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runApp(t, env, []*cli.Command{cmd}, "serve"); err == nil || !strings.Contains(err.Error(), `"max-recipients"`) {
		t.Errorf("bad value in the file: %v", err)
	}
}

// TestFlagAccessorsMatchKinds: every c.String/Int/...("name") in this package
// names a flag of that type (a getter of the wrong type returns the zero
// value, as urfave/cli did for most).
func TestFlagAccessorsMatchKinds(t *testing.T) {
	kinds := map[string]string{}
	var all []cli.Flag
	for _, cmd := range newApp(nil, nil, nil).Commands {
		all = append(all, cmd.Flags...)
	}
	for _, f := range all {
		var k string
		switch f.(type) {
		case *cli.StringFlag:
			k = "String"
		case *cli.StringSliceFlag:
			k = "StringSlice"
		case *cli.IntFlag:
			k = "Int"
		case *cli.Int64Flag:
			k = "Int64"
		case *cli.BoolFlag:
			k = "Bool"
		case *cli.DurationFlag:
			k = "Duration"
		}
		kinds[f.Names()[0]] = k
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`\bc\.(String|StringSlice|Int|Int64|Bool|Duration|IsSet)\("([^"]+)"\)`)
	calls := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			calls++
			if k, ok := kinds[m[2]]; !ok || (m[1] != "IsSet" && k != m[1]) {
				t.Errorf("%s: c.%s(%q), but the flag is %q", f, m[1], m[2], k)
			}
		}
	}
	if calls < 50 {
		t.Fatalf("found only %d flag getter calls: the pattern is stale", calls)
	}
}
