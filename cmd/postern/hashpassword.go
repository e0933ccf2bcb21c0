package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/postern/postern/auth/usersfile"
)

func hashPasswordCommand() *cli.Command {
	return &cli.Command{
		Name:  "hash-password",
		Usage: "read a password (from the terminal without echo, or one line of stdin) and print a users-file hash",
		Flags: []cli.Flag{
			str("scheme", "BLF-CRYPT", "BLF-CRYPT (bcrypt) or ARGON2ID"),
		},
		Action: func(c *cli.Context) error {
			password, err := readPassword(c.App.Reader, c.App.ErrWriter)
			if err != nil {
				return err
			}
			hash, err := usersfile.HashPassword(password, strings.ToUpper(c.String("scheme")))
			if err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, hash)
			return nil
		},
	}
}

// readPassword prompts twice on a terminal (no echo), or reads the first line
// of a pipe.
func readPassword(in io.Reader, prompt io.Writer) (string, error) {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(prompt, "Password: ")
		first, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		fmt.Fprint(prompt, "Again: ")
		second, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		if string(first) != string(second) {
			return "", errors.New("the passwords differ")
		}
		if len(first) == 0 {
			return "", errors.New("empty password")
		}
		return string(first), nil
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty password on stdin")
	}
	return line, nil
}
