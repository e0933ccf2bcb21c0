package main

import (
	"fmt"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/postern/postern/auth/usersfile"
)

// defaultUsersFile is where `postern user` edits the users file unless
// --users says otherwise: the Debian package's place (deploy/debian).
const defaultUsersFile = "/etc/postern/users"

// userCommand edits the users file: `postern user add|passwd|del LOGIN`.
// It writes the file itself, so no shell idiom (`echo "login:$(postern
// hash-password)" >> users`) can leave a half line behind when the
// password is mistyped: the password is read first (twice on a terminal),
// and nothing is written unless it is good (issue 23, trap 3).
func userCommand() *cli.Command {
	usersFlag := str("users", defaultUsersFile, "the users file to edit (Dovecot passwd-file format)")
	schemeFlag := str("scheme", "BLF-CRYPT", "BLF-CRYPT (bcrypt) or ARGON2ID")
	subs := []*cli.Command{
		{
			Name:      "add",
			Usage:     "add a login: read its password (twice on a terminal, or one line of stdin) and write the users file",
			ArgsUsage: "LOGIN",
			Flags:     []cli.Flag{usersFlag, schemeFlag},
			Action: func(c *cli.Context) error {
				return editLogin(c, func(login, _ string) error { return checkNewLogin(login) },
					func(lines []string, login, hash, path string) ([]string, error) {
						for _, l := range lines {
							if sameLogin(usersLineLogin(l), login) {
								return nil, fmt.Errorf("login %q is already in %s (postern user passwd changes its password)", usersLineLogin(l), path)
							}
						}
						return append(lines, login+":"+hash), nil
					},
					"added %s to %s")
			},
		},
		{
			Name:      "passwd",
			Usage:     "set a new password for a login of the users file",
			ArgsUsage: "LOGIN",
			Flags:     []cli.Flag{usersFlag, schemeFlag},
			Action: func(c *cli.Context) error {
				// Ask for no password for a login that is not there.
				present := func(login, path string) error {
					raw, err := os.ReadFile(path)
					if err != nil {
						return fmt.Errorf("users file: %w", err)
					}
					return requireLogin(strings.Split(string(raw), "\n"), login, path)
				}
				return editLogin(c, present, func(lines []string, login, hash, path string) ([]string, error) {
					if err := requireLogin(lines, login, path); err != nil {
						return nil, err // deleted while the password was typed
					}
					out := make([]string, 0, len(lines))
					for _, l := range lines {
						if sameLogin(usersLineLogin(l), login) {
							// Keep the fields after the hash (uid, gid, extra).
							f, _ := usersfile.ParseLine(l)
							l = f.Login + ":" + hash
							if f.HasRest {
								l += ":" + f.Rest
							}
						}
						out = append(out, l)
					}
					return out, nil
				}, "changed the password of %s in %s")
			},
		},
		{
			Name:      "del",
			Usage:     "remove a login from the users file",
			ArgsUsage: "LOGIN",
			Flags:     []cli.Flag{usersFlag},
			Action: func(c *cli.Context) error {
				login, err := userArg(c)
				if err != nil {
					return err
				}
				path := c.String("users")
				err = editUsersFile(path, func(lines []string) ([]string, error) {
					if err := requireLogin(lines, login, path); err != nil {
						return nil, err
					}
					out := make([]string, 0, len(lines))
					for _, l := range lines {
						if !sameLogin(usersLineLogin(l), login) {
							out = append(out, l)
						}
					}
					return out, nil
				})
				if err != nil {
					return err
				}
				fmt.Fprintf(c.App.ErrWriter, "removed %s from %s; `systemctl reload postern` (SIGHUP) takes it in\n", login, path)
				return nil
			},
		},
	}
	for _, sub := range subs {
		strictUsage(sub)
	}
	return &cli.Command{
		Name:        "user",
		Usage:       "add a login to the users file, change its password, or remove it (the file is replaced atomically)",
		ArgsUsage:   "add|passwd|del LOGIN",
		Subcommands: subs,
	}
}

// userArg is the one LOGIN argument of a `user` subcommand.
func userArg(c *cli.Context) (string, error) {
	if c.NArg() != 1 {
		return "", usageErrorf("usage: %s user %s [--users FILE] LOGIN", c.App.Name, c.Command.Name)
	}
	return c.Args().First(), nil
}

// checkNewLogin refuses a login the users file cannot hold as typed: one
// with a ':' (the field separator), a leading '#' (a comment), whitespace
// or control characters (usersfile.Parse refuses them too), or
// invalid UTF-8.
func checkNewLogin(login string) error {
	switch {
	case login == "":
		return usageErrorf("empty login")
	case !utf8.ValidString(login):
		return usageErrorf("login %q is not valid UTF-8", login)
	case strings.Contains(login, ":"):
		return usageErrorf("login %q contains ':', the users file's field separator", login)
	case strings.HasPrefix(login, "#"):
		return usageErrorf("login %q starts with '#', which makes its line a comment", login)
	case strings.ContainsFunc(login, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return usageErrorf("login %q contains whitespace or control characters", login)
	}
	return nil
}

// editLogin is `user add` and `user passwd`: it takes the LOGIN argument,
// lets check refuse it (before a password is asked for), reads the
// password and hashes it in --scheme, rewrites the users file with edit
// (given the file's lines, the login, its new hash and the file's path)
// and says what it did: done is a format with the login and the path.
func editLogin(c *cli.Context, check func(login, path string) error,
	edit func(lines []string, login, hash, path string) ([]string, error), done string) error {
	login, err := userArg(c)
	if err != nil {
		return err
	}
	path := c.String("users")
	if err := check(login, path); err != nil {
		return err
	}
	hash, err := readHash(c)
	if err != nil {
		return err
	}
	err = editUsersFile(path, func(lines []string) ([]string, error) { return edit(lines, login, hash, path) })
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.ErrWriter, done+"; `systemctl reload postern` (SIGHUP) takes it in\n", login, path)
	return nil
}

// requireLogin says that login is not in the file's lines.
func requireLogin(lines []string, login, path string) error {
	for _, l := range lines {
		if sameLogin(usersLineLogin(l), login) {
			return nil
		}
	}
	return fmt.Errorf("login %q is not in %s", login, path)
}

// readHash reads the password (twice on a terminal, or one line of stdin)
// and returns its hash in --scheme.
func readHash(c *cli.Context) (string, error) {
	password, err := readPassword(c.App.Reader, c.App.ErrWriter)
	if err != nil {
		return "", err
	}
	return usersfile.HashPassword(password, strings.ToUpper(c.String("scheme")))
}
