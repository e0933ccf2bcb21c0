package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// The help keeps urfave/cli v2's layout (NAME, USAGE, COMMANDS, OPTIONS;
// one line per flag: "--name value  usage (default: ...) [$ENV]"), so what
// scripts and tests read in it stays where it was.

func (a *App) writeHelp() error {
	w := tabwriter.NewWriter(a.Writer, 1, 8, 2, ' ', 0)
	fmt.Fprintf(w, "NAME:\n   %s - %s\n\n", a.Name, a.Usage)
	fmt.Fprintf(w, "USAGE:\n   %s [global options] command [command options]\n\n", a.Name)
	if a.Version != "" {
		fmt.Fprintf(w, "VERSION:\n   %s\n\n", a.Version)
	}
	fmt.Fprintf(w, "COMMANDS:\n")
	for _, c := range a.Commands {
		fmt.Fprintf(w, "   %s\t%s\n", c.Name, c.Usage)
	}
	fmt.Fprintf(w, "   help, h\tShows a list of commands or help for one command\n\n")
	fmt.Fprintf(w, "GLOBAL OPTIONS:\n")
	fmt.Fprintf(w, "   --help, -h\tshow help\n")
	fmt.Fprintf(w, "   --version, -v\tprint the version\n")
	return w.Flush()
}

func (a *App) writeCommandHelp(cmd *Command) error {
	w := tabwriter.NewWriter(a.Writer, 1, 8, 2, ' ', 0)
	fmt.Fprintf(w, "NAME:\n   %s %s - %s\n\n", a.Name, cmd.Name, cmd.Usage)
	usage := a.Name + " " + cmd.Name + " [command options]"
	if cmd.ArgsUsage != "" {
		usage += " " + cmd.ArgsUsage
	}
	fmt.Fprintf(w, "USAGE:\n   %s\n\nOPTIONS:\n", usage)
	for _, f := range cmd.Flags {
		writeFlagHelp(w, f.spec())
	}
	fmt.Fprintf(w, "   --help, -h\tshow help\n")
	return w.Flush()
}

// writeFlagHelp writes one flag's line: names, usage, default and
// environment variables.
func writeFlagHelp(w io.Writer, s flagSpec) {
	names := "--" + s.name
	switch s.def.(type) {
	case bool:
	case []string:
		names += " value [ --" + s.name + " value ]"
	default:
		names += " value"
	}
	line := s.usage
	if d := defaultText(s); d != "" {
		line += " (default: " + d + ")"
	}
	if len(s.envVars) > 0 {
		line += " [$" + strings.Join(s.envVars, ", $") + "]"
	}
	fmt.Fprintf(w, "   %s\t%s\n", names, line)
}

func defaultText(s flagSpec) string {
	if s.defaultText != "" {
		return s.defaultText
	}
	switch d := s.def.(type) {
	case string:
		if d != "" {
			return strconv.Quote(d)
		}
	case []string:
		q := make([]string, len(d))
		for i, item := range d {
			q[i] = strconv.Quote(item)
		}
		return strings.Join(q, ", ")
	default:
		v := &value{v: d}
		return v.text()[0]
	}
	return ""
}
