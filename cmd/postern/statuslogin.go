package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/postern/postern/limits"
)

// statusLogin checks the LOGIN of `status` and `unsuspend` against the
// users file when that file is where every login comes from (--users
// without --dovecot-auth or --ldap-url): a login not in it is an error
// (exit 1) rather than a page of zero counters (issue 23, trap 4), and one
// spelt in another case gets the file's spelling, the canonical identity
// the counters are kept under. With another backend Postern cannot list
// the logins, and LOGIN is taken as given.
func statusLogin(c *cli.Context, login string) (string, error) {
	path := c.String("users")
	if path == "" || c.String("dovecot-auth") != "" || c.String("ldap-url") != "" {
		return login, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("checking the login: %w", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if l := usersLineLogin(line); l != "" && sameLogin(l, login) {
			return l, nil
		}
	}
	return "", fmt.Errorf("unknown login %q: it is not in the users file %s", login, path)
}

// printNothingRecorded says so when a login has no counters and no
// suspension: it has not sent within the windows, or it is no login
// Postern knows (status cannot tell these apart without a users file).
func printNothingRecorded(w io.Writer, st limits.LoginStatus) {
	if st.Messages.Count != 0 || st.Messages.Over != 0 || st.Recipients.Count != 0 || st.Recipients.Over != 0 ||
		st.Refused.Refused != 0 || st.Refused.Accepted != 0 || st.Suspension != nil {
		return
	}
	fmt.Fprintf(w, "nothing recorded for %s: it has not sent within the windows, or it is not a login "+
		"(LOGIN is the account's canonical identity, the login= of the log lines)\n", st.Login)
}
