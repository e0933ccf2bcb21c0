package serve

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/auth/dovecot"
	"github.com/postern/postern/auth/ldap"
	"github.com/postern/postern/auth/usersfile"
)

// authBackends is the authentication stack built from cfg: the
// backends in the documented order (users file, then Dovecot, then LDAP),
// behind one credential cache.
type authBackends struct {
	users *usersfile.File // nil if --users is not set
	cache *auth.Cache
}

func buildAuth(cfg AuthConfig, log *slog.Logger) (*authBackends, error) {
	var chain []auth.Authenticator
	ab := &authBackends{}
	if n := cfg.Concurrency; n < 0 {
		return nil, fmt.Errorf("--auth-concurrency %d must not be negative (0: no bound)", n)
	}
	if path := cfg.Users; path != "" {
		// Bound at one verification per core: a login storm then queues in
		// arrival order instead of slowing every session down together.
		users, err := usersfile.OpenSlots(path, log, usersfile.NewVerifySlots(cfg.Concurrency))
		if err != nil {
			return nil, fmt.Errorf("loading users: %w", err)
		}
		ab.users = users
		chain = append(chain, users)
	}
	if addr := cfg.DovecotAuth; addr != "" {
		network := "unix"
		if _, _, err := net.SplitHostPort(addr); err == nil && !strings.HasPrefix(addr, "/") {
			network = "tcp"
		}
		// The client's default timeout (20 s) outlasts Dovecot's penalty
		// delay, so a delayed FAIL still counts as a wrong password.
		chain = append(chain, dovecot.New(network, addr, dovecot.Options{Service: dovecot.DefaultService}, log))
	}
	if u := cfg.LDAP.URL; u != "" {
		lc := ldap.Config{
			URL:            u,
			StartTLS:       cfg.LDAP.StartTLS,
			BaseDN:         cfg.LDAP.Base,
			Filter:         cfg.LDAP.Filter,
			BindDN:         cfg.LDAP.BindDN,
			AliasAttribute: cfg.LDAP.AliasAttribute,
			LoginAttribute: cfg.LDAP.LoginAttribute,
		}
		if f := cfg.LDAP.BindPasswordFile; f != "" {
			pw, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("reading --ldap-bind-password-file: %w", err)
			}
			lc.BindPassword = strings.TrimRight(string(pw), "\r\n")
		}
		l, err := ldap.New(lc, log)
		if err != nil {
			return nil, err
		}
		chain = append(chain, l)
	}
	if len(chain) == 0 {
		return nil, errors.New("no authentication backend: set --users, --dovecot-auth or --ldap-url")
	}
	ab.cache = auth.NewCache(auth.Chain(chain...), cfg.CacheTTL, 0)
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
