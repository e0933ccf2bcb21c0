package cli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Flag is one command-line flag. Its value comes, in this order of
// precedence, from the command line, from its environment variables
// (EnvVars) or from its default (Value); a --config file, applied by the
// command's Before with Context.Set, fills the flags set neither way.
type Flag interface {
	// Names returns the flag's names (one: flags have no aliases).
	Names() []string
	spec() flagSpec
}

// flagSpec is what every flag type has in common; the default's Go type
// (string, []string, int, int64, bool, time.Duration) is the flag's kind.
type flagSpec struct {
	name        string
	def         any
	defaultText string
	usage       string
	envVars     []string
}

// StringFlag is a string flag.
type StringFlag struct {
	Name        string
	Value       string
	DefaultText string // shown in the help instead of Value
	Usage       string
	EnvVars     []string
}

// StringSliceFlag is a repeatable flag: every value, and the environment
// variable's value, is split at commas and each item trimmed; empty items are
// dropped. The first value given replaces the default (and the command line
// replaces the environment's list).
type StringSliceFlag struct {
	Name        string
	Value       *StringSlice
	DefaultText string
	Usage       string
	EnvVars     []string
}

// IntFlag is an int flag (decimal, or 0x/0o/0b prefixed like Go's flag).
type IntFlag struct {
	Name        string
	Value       int
	DefaultText string
	Usage       string
	EnvVars     []string
}

// Int64Flag is an int64 flag.
type Int64Flag struct {
	Name        string
	Value       int64
	DefaultText string
	Usage       string
	EnvVars     []string
}

// BoolFlag is a flag without a value: --x is true, --x=false is false (a
// separate "false" argument is not its value but the first argument).
type BoolFlag struct {
	Name        string
	Value       bool
	DefaultText string
	Usage       string
	EnvVars     []string
}

// DurationFlag is a time.Duration flag ("90s", "1h30m").
type DurationFlag struct {
	Name        string
	Value       time.Duration
	DefaultText string
	Usage       string
	EnvVars     []string
}

// StringSlice is the default of a StringSliceFlag.
type StringSlice struct{ items []string }

// NewStringSlice returns a default list.
func NewStringSlice(items ...string) *StringSlice {
	return &StringSlice{items: append([]string(nil), items...)}
}

// Value returns the items.
func (s *StringSlice) Value() []string { return append([]string(nil), s.items...) }

func (f *StringFlag) Names() []string      { return []string{f.Name} }
func (f *StringSliceFlag) Names() []string { return []string{f.Name} }
func (f *IntFlag) Names() []string         { return []string{f.Name} }
func (f *Int64Flag) Names() []string       { return []string{f.Name} }
func (f *BoolFlag) Names() []string        { return []string{f.Name} }
func (f *DurationFlag) Names() []string    { return []string{f.Name} }

func (f *StringFlag) spec() flagSpec {
	return flagSpec{f.Name, f.Value, f.DefaultText, f.Usage, f.EnvVars}
}

func (f *StringSliceFlag) spec() flagSpec {
	var def []string
	if f.Value != nil {
		def = f.Value.Value()
	}
	return flagSpec{f.Name, def, f.DefaultText, f.Usage, f.EnvVars}
}

func (f *IntFlag) spec() flagSpec {
	return flagSpec{f.Name, f.Value, f.DefaultText, f.Usage, f.EnvVars}
}
func (f *Int64Flag) spec() flagSpec {
	return flagSpec{f.Name, f.Value, f.DefaultText, f.Usage, f.EnvVars}
}
func (f *BoolFlag) spec() flagSpec {
	return flagSpec{f.Name, f.Value, f.DefaultText, f.Usage, f.EnvVars}
}
func (f *DurationFlag) spec() flagSpec {
	return flagSpec{f.Name, f.Value, f.DefaultText, f.Usage, f.EnvVars}
}

// value is a flag's current value in one Context.
type value struct {
	spec flagSpec
	v    any  // same Go type as spec.def
	set  bool // by the command line, the environment or Context.Set
	// fresh: the next item of a slice flag replaces the list (the
	// default's or the environment's) instead of adding to it.
	fresh bool
}

func newValue(f Flag) *value {
	s := f.spec()
	v := s.def
	if l, ok := v.([]string); ok {
		v = append([]string(nil), l...)
	}
	return &value{spec: s, v: v, fresh: true}
}

// isBool reports whether the flag takes no value argument.
func (v *value) isBool() bool {
	_, ok := v.v.(bool)
	return ok
}

// parse sets the value from its text form.
func (v *value) parse(s string) error {
	switch old := v.v.(type) {
	case string:
		v.v = s
	case []string:
		if v.fresh {
			old, v.fresh = nil, false
		}
		v.v = append(old, splitList(s)...)
	case int:
		n, err := strconv.ParseInt(s, 0, strconv.IntSize)
		if err != nil {
			return numError(err)
		}
		v.v = int(n)
	case int64:
		n, err := strconv.ParseInt(s, 0, 64)
		if err != nil {
			return numError(err)
		}
		v.v = n
	case bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return errors.New("want true or false")
		}
		v.v = b
	case time.Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return errors.New("want a duration like 90s or 1h30m")
		}
		v.v = d
	}
	v.set = true
	return nil
}

// numError drops strconv's "strconv.ParseInt: parsing ..." prefix: the
// caller names the flag and the value.
func numError(err error) error {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return ne.Err
	}
	return err
}

// splitList splits a slice flag's value at commas: the environment's only
// way to give several items, and accepted on the command line too (as
// urfave/cli did).
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// applyEnv sets the value from the first of its environment variables that
// exists. As with urfave/cli: an empty variable sets a string to "", a bool
// to false and a list to empty, and is ignored for numbers and durations.
func (v *value) applyEnv(lookupEnv func(string) (string, bool)) error {
	for _, name := range v.spec.envVars {
		s, ok := lookupEnv(name)
		if !ok {
			continue
		}
		switch v.v.(type) {
		case int, int64, time.Duration:
			if s == "" {
				return nil
			}
		case bool:
			if s == "" {
				s = "false"
			}
		}
		if err := v.parse(s); err != nil {
			return usageErrorf("environment variable %s=%q for --%s: %v", name, s, v.spec.name, err)
		}
		// The command line replaces the environment's list.
		v.fresh = true
		return nil
	}
	return nil
}

// text returns the value in the form parse reads back (one item of a
// list per element).
func (v *value) text() []string {
	switch x := v.v.(type) {
	case string:
		return []string{x}
	case []string:
		return x
	case time.Duration:
		return []string{x.String()}
	}
	return []string{fmt.Sprint(v.v)}
}
