package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/auth/dovecot"
	"github.com/postern/postern/auth/ldap"
	"github.com/postern/postern/auth/usersfile"
)

// authBackends is the authentication stack built from the flags: the
// backends in the documented order (users file, then Dovecot, then LDAP),
// behind one credential cache.
type authBackends struct {
	users *usersfile.File // nil if --users is not set
	cache *auth.Cache
}

func buildAuth(c *cli.Context, log *slog.Logger) (*authBackends, error) {
	var chain []auth.Authenticator
	ab := &authBackends{}
	if n := c.Int("auth-concurrency"); n < 0 {
		return nil, fmt.Errorf("--auth-concurrency %d must not be negative (0: no bound)", n)
	}
	if path := c.String("users"); path != "" {
		// Bound at one verification per core: a login storm then queues in
		// arrival order instead of slowing every session down together.
		users, err := usersfile.OpenSlots(path, log, usersfile.NewVerifySlots(c.Int("auth-concurrency")))
		if err != nil {
			return nil, fmt.Errorf("loading users: %w", err)
		}
		ab.users = users
		chain = append(chain, users)
	}
	if addr := c.String("dovecot-auth"); addr != "" {
		network := "unix"
		if _, _, err := net.SplitHostPort(addr); err == nil && !strings.HasPrefix(addr, "/") {
			network = "tcp"
		}
		// The client's default timeout (20 s) outlasts Dovecot's penalty
		// delay, so a delayed FAIL still counts as a wrong password.
		chain = append(chain, dovecot.New(network, addr, dovecot.Options{Service: dovecot.DefaultService}, log))
	}
	if u := c.String("ldap-url"); u != "" {
		cfg := ldap.Config{
			URL:            u,
			StartTLS:       c.Bool("ldap-starttls"),
			BaseDN:         c.String("ldap-base"),
			Filter:         c.String("ldap-filter"),
			BindDN:         c.String("ldap-bind-dn"),
			AliasAttribute: c.String("ldap-alias-attribute"),
			LoginAttribute: c.String("ldap-login-attribute"),
		}
		if f := c.String("ldap-bind-password-file"); f != "" {
			pw, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("reading --ldap-bind-password-file: %w", err)
			}
			cfg.BindPassword = strings.TrimRight(string(pw), "\r\n")
		}
		l, err := ldap.New(cfg, log)
		if err != nil {
			return nil, err
		}
		chain = append(chain, l)
	}
	if len(chain) == 0 {
		return nil, errors.New("no authentication backend: set --users, --dovecot-auth or --ldap-url")
	}
	ab.cache = auth.NewCache(auth.Chain(chain...), c.Duration("auth-cache-ttl"), 0)
	return ab, nil
}

// reload re-reads the users file and forgets cached logins, so a removed
// user or changed password takes effect at once.
func (ab *authBackends) reload() error {
	defer ab.cache.Purge()
	if ab.users == nil {
		return nil
	}
	return ab.users.Reload()
}
