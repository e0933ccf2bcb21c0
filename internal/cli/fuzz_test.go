package cli

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// FuzzParseArgs feeds argv (NUL-separated) to the flag parser; the seeds
// are in testdata/fuzz/FuzzParseArgs. It must
// never panic; a refusal is a usage error (exit 2) with a message; and an
// accepted argv, written back in canonical form (--name=value per value,
// "--", the arguments), parses to the same values, set flags, help and
// arguments.
func FuzzParseArgs(f *testing.F) {
	f.Fuzz(func(t *testing.T, argv string) {
		args := strings.Split(argv, "\x00")
		fs := newFlagSet(testFlags())
		rest, help, err := fs.parseArgs(args)
		if err != nil {
			var ec ExitCoder
			if !errors.As(err, &ec) || ec.ExitCode() != 2 || err.Error() == "" {
				t.Fatalf("%q: refusal %v is not a usage error", args, err)
			}
			return
		}
		if len(rest) > len(args) {
			t.Fatalf("%q: more arguments out (%q) than in", args, rest)
		}
		again := serialize(fs, rest, help)
		fs2 := newFlagSet(testFlags())
		rest2, help2, err := fs2.parseArgs(again)
		if err != nil {
			t.Fatalf("%q: re-serialised as %q: %v", args, again, err)
		}
		if help2 != help || !slices.Equal(rest2, rest) {
			t.Fatalf("%q → %q: help %v/%v args %q/%q", args, again, help, help2, rest, rest2)
		}
		for i, v := range fs.order {
			w := fs2.order[i]
			if v.set != w.set || !slices.Equal(v.text(), w.text()) {
				t.Fatalf("%q → %q: --%s %q (set %v), then %q (set %v)", args, again, v.spec.name, v.text(), v.set, w.text(), w.set)
			}
		}
	})
}

// serialize writes parsed flags back as argv: each set flag as
// --name=value (a list: one per item, or --name= when empty), --help,
// then "--" and the arguments.
func serialize(fs *flagSet, rest []string, help bool) []string {
	var out []string
	for _, v := range fs.order {
		if !v.set {
			continue
		}
		items := v.text()
		if len(items) == 0 {
			out = append(out, "--"+v.spec.name+"=")
		}
		for _, item := range items {
			out = append(out, "--"+v.spec.name+"="+item)
		}
	}
	if help {
		out = append(out, "--help")
	}
	return append(append(out, "--"), rest...)
}
