package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestUpstreamListSources: --upstream is repeatable, a TOML list in the
// --config file and comma-separated in POSTERN_UPSTREAM, in the order given
// (the order of failover).
func TestUpstreamListSources(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "postern.toml")
	if err := os.WriteFile(conf, []byte(`upstream = ["file-a:25", "file-b:25"]`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{"flags", nil, []string{"--upstream", "a:25", "--upstream", "b:25"}, []string{"a:25", "b:25"}},
		{"file", map[string]string{"POSTERN_CONFIG": conf}, nil, []string{"file-a:25", "file-b:25"}},
		{"env", map[string]string{"POSTERN_UPSTREAM": "env-a:25,env-b:25"}, nil, []string{"env-a:25", "env-b:25"}},
	} {
		var got []string
		cmd := &cli.Command{Name: "serve", Flags: serveFlags(), Before: applyConfigFile,
			Action: func(ctx *cli.Context) error { got = ctx.StringSlice("upstream"); return nil }}
		if out, err := runApp(t, c.env, []*cli.Command{cmd}, append([]string{"serve"}, c.args...)...); err != nil {
			t.Fatalf("%s: %v\n%s", c.name, err, out)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: upstreams %q, want %q", c.name, got, c.want)
		}
	}
}
