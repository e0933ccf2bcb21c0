package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

// envPrefix starts the environment twin of every flag (see env).
const envPrefix = "POSTERN_"

// warnUnknownEnv prints a warning for every POSTERN_* variable of environ
// that is no flag's twin: a misspelt POSTERN_UPSTREAM in /etc/default/postern
// would otherwise be ignored without a word (issue 23, trap 5). The closest
// known name is suggested. Only a warning: a variable meant for another
// version of postern must not stop this one.
func warnUnknownEnv(app *cli.App, environ []string, w io.Writer) {
	known := map[string]bool{}
	var walk func([]*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, cmd := range cmds {
			for _, f := range cmd.Flags {
				if ev, ok := f.(interface{ GetEnvVars() []string }); ok {
					for _, e := range ev.GetEnvVars() {
						known[e] = true
					}
				}
			}
			walk(cmd.Subcommands)
		}
	}
	walk(app.Commands)
	names := knownNames(known)
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, envPrefix) && !known[name] {
			fmt.Fprintf(w, "postern: WARNING: unknown environment variable %s ignored%s\n",
				name, closestName(name, names, " (did you mean %s?)"))
		}
	}
}

// knownNames lists a set's names in order.
func knownNames(set map[string]bool) []string {
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// closestName formats the name of names nearest to name with format, or
// returns "" when none is close: within an edit distance of a third of the
// name's length (at least 1, at most 3), case-insensitive, the POSTERN_
// prefix aside (every variable has it).
func closestName(name string, names []string, format string) string {
	key := strings.ToLower(strings.TrimPrefix(name, envPrefix))
	best, bestDist := "", min(3, max(1, len(key)/3))+1
	for _, n := range names {
		if d := editDistance(key, strings.ToLower(strings.TrimPrefix(n, envPrefix))); d < bestDist {
			best, bestDist = n, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(format, best)
}

// editDistance is the Levenshtein distance of a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
