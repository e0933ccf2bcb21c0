package cli

import (
	"strings"
)

// flagSet is one command's flag values.
type flagSet struct {
	order  []*value // as declared: the help lists them in this order
	byName map[string]*value
}

func newFlagSet(flags []Flag) *flagSet {
	fs := &flagSet{byName: map[string]*value{}}
	for _, f := range flags {
		v := newValue(f)
		fs.order = append(fs.order, v)
		for _, n := range f.Names() {
			fs.byName[n] = v
		}
	}
	return fs
}

func (fs *flagSet) applyEnv(lookupEnv func(string) (string, bool)) error {
	for _, v := range fs.order {
		if err := v.applyEnv(lookupEnv); err != nil {
			return err
		}
	}
	return nil
}

// isHelp reports whether name is the help flag every command has
// (--help, -h) unless it defines a flag of that name.
func (fs *flagSet) isHelp(name string) bool {
	return (name == "help" || name == "h") && fs.byName[name] == nil
}

// parseArgs sets the flags found at the start of args and returns the
// arguments after them. It reads argv the way Go's flag package does (and so
// urfave/cli v2 did): -name and --name are the same flag; a value follows
// "=" or is the next argument, whatever it looks like; a bool flag takes a
// value only after "=" (--x, --x=false); flags end at the first argument
// that is not one, at "-" (an argument) or after "--". A flag given twice
// keeps the last value; a slice flag collects them all.
func (fs *flagSet) parseArgs(args []string) (rest []string, help bool, err error) {
	for len(args) > 0 {
		arg := args[0]
		if len(arg) < 2 || arg[0] != '-' {
			break
		}
		args = args[1:]
		if arg == "--" {
			break
		}
		name := arg[1:]
		if name[0] == '-' {
			name = name[1:]
		}
		if name == "" || name[0] == '-' || name[0] == '=' {
			return nil, false, usageErrorf("bad flag syntax: %s", arg)
		}
		name, val, hasVal := strings.Cut(name, "=")
		typed := arg[:len(arg)-len(val)]
		if hasVal {
			typed = typed[:len(typed)-1]
		}
		if fs.isHelp(name) {
			h := &value{v: false}
			if hasVal {
				if err := h.parse(val); err != nil {
					return nil, false, usageErrorf("invalid value %q for flag %s: %v", val, typed, err)
				}
			} else {
				h.v = true
			}
			help = help || h.v.(bool)
			continue
		}
		v := fs.byName[name]
		if v == nil {
			return nil, false, usageErrorf("unknown flag %s", typed)
		}
		switch {
		case hasVal:
		case v.isBool():
			val = "true"
		case len(args) == 0:
			return nil, false, usageErrorf("flag %s needs a value", typed)
		default:
			val, args = args[0], args[1:]
		}
		if err := v.parse(val); err != nil {
			return nil, false, usageErrorf("invalid value %q for flag %s: %v", val, typed, err)
		}
	}
	return args, help, nil
}
