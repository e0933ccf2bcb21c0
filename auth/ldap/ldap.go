// Package ldap is the LDAP backend: it verifies a password by searching
// the user's entry and binding as it (saslauthd's ldap_filter mode), over
// ldap://, ldaps:// or StartTLS, and reads the entry's canonical login,
// further names and sender addresses into auth.Result. go-ldap is imported
// as goldap.
//
// It implements auth.Authenticator and imports auth for its types; it must
// never import the other backends (auth/usersfile, auth/dovecot), proxy,
// limits, policy or anything under cmd.
package ldap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	goldap "github.com/go-ldap/ldap/v3"

	"github.com/postern/postern/auth"
)

// Config configures the LDAP backend.
type Config struct {
	// URL is ldap://host[:port] or ldaps://host[:port].
	URL string
	// StartTLS upgrades an ldap:// connection before anything is sent
	// (RFC 4513 §3); not allowed with ldaps://.
	StartTLS bool
	// TLS is used for ldaps:// and StartTLS (RootCAs, client certificates).
	// ServerName defaults to the URL's host.
	TLS *tls.Config
	// BaseDN is where the user search starts (subtree scope).
	BaseDN string
	// Filter finds the user's entry; every %u becomes the login, escaped
	// with goldap.EscapeFilter (RFC 4515 §3). Default DefaultFilter.
	Filter string
	// BindDN and BindPassword authenticate the search. Empty BindDN: the
	// search is anonymous.
	BindDN       string
	BindPassword string
	// MailAttribute (default DefaultMailAttribute) and AliasAttribute (e.g.
	// mailAlternateAddress or mailLocalAddress; empty: none) hold the
	// addresses the user owns; their values become auth.Result.Addresses.
	MailAttribute  string
	AliasAttribute string
	// LoginAttribute names the entry's attribute whose first value is the
	// account's canonical identity, auth.Result.Login (default
	// DefaultLoginAttribute); the entry's DN when it has no value.
	// Never the login as typed: with a filter like (|(uid=%u)(mail=%u))
	// every spelling of one entry must be one account for the limits.
	LoginAttribute string
	// Timeout bounds one whole verification (dial, search, bind) when the
	// caller's context has no earlier deadline. Default DefaultTimeout.
	Timeout time.Duration
}

// Client verifies passwords by searching the user's entry and binding as it,
// as saslauthd's ldap_filter mode does. Each request uses a fresh
// connection: verifications are rare behind auth.Cache, and a fresh
// connection never carries a previous user's bind identity. Safe for
// concurrent use.
type Client struct {
	cfg Config
	log *slog.Logger
	// nameAttrs are the attributes the filter compares the login with
	// (filterLoginAttributes): their values are the entry's auth.Result.Names.
	nameAttrs []string
	// dummyDN is bound to when the search did not find exactly one entry.
	dummyDN string
}

// New checks cfg and returns the backend; it does not connect.
func New(cfg Config, log *slog.Logger) (*Client, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("auth: ldap url %q: %w", cfg.URL, err)
	}
	switch {
	case u.Scheme != "ldap" && u.Scheme != "ldaps":
		return nil, fmt.Errorf("auth: ldap url %q: scheme must be ldap or ldaps", cfg.URL)
	case u.Host == "":
		return nil, fmt.Errorf("auth: ldap url %q: no host", cfg.URL)
	case cfg.StartTLS && u.Scheme == "ldaps":
		return nil, errors.New("auth: ldap: StartTLS with an ldaps:// URL")
	case cfg.BaseDN == "":
		return nil, errors.New("auth: ldap: no base DN")
	case cfg.BindDN != "" && cfg.BindPassword == "":
		// An empty password makes a simple bind unauthenticated (RFC 4513
		// §5.1.2): it would "succeed" and search anonymously.
		return nil, errors.New("auth: ldap: bind DN without a bind password")
	}
	if _, err := goldap.ParseDN(cfg.BaseDN); err != nil {
		return nil, fmt.Errorf("auth: ldap base DN %q: %w", cfg.BaseDN, err)
	}
	if cfg.Filter == "" {
		cfg.Filter = DefaultFilter
	}
	if !strings.Contains(cfg.Filter, "%u") {
		return nil, fmt.Errorf("auth: ldap filter %q has no %%u", cfg.Filter)
	}
	if _, err := goldap.CompileFilter(userFilter(cfg.Filter, "user@example.org")); err != nil {
		return nil, fmt.Errorf("auth: ldap filter %q: %w", cfg.Filter, err)
	}
	nameAttrs, err := filterLoginAttributes(cfg.Filter)
	if err != nil {
		return nil, fmt.Errorf("auth: ldap filter %q: %w", cfg.Filter, err)
	}
	if cfg.MailAttribute == "" {
		cfg.MailAttribute = DefaultMailAttribute
	}
	if cfg.LoginAttribute == "" {
		cfg.LoginAttribute = DefaultLoginAttribute
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.StartTLS || u.Scheme == "ldaps" {
		tc := &tls.Config{}
		if cfg.TLS != nil {
			tc = cfg.TLS.Clone()
		}
		if tc.ServerName == "" {
			tc.ServerName = u.Hostname()
		}
		cfg.TLS = tc
	}
	return &Client{
		cfg:       cfg,
		nameAttrs: nameAttrs,
		log:       log.With("backend", "ldap", "url", cfg.URL),
		dummyDN:   "cn=postern-no-such-user," + cfg.BaseDN,
	}, nil
}

func userFilter(filter, login string) string {
	return strings.ReplaceAll(filter, "%u", goldap.EscapeFilter(login))
}

// filterLoginAttributes returns the attributes filter compares the whole
// login with, by equality or approximate match, outside any negation: in
// (&(objectClass=person)(|(uid=%u)(mail=%u))) uid and mail. A value of one
// of them is a spelling that finds the entry; a substring such as
// (mail=%u@example.org) is not, and is left out.
func filterLoginAttributes(filter string) ([]string, error) {
	// A login no filter text contains: a NUL, which only an escaped \00
	// in the filter could produce.
	const probe = "\x00postern-login\x00"
	packet, err := goldap.CompileFilter(userFilter(filter, probe))
	if err != nil {
		return nil, err
	}
	var attrs []string
	var walk func(p *ber.Packet)
	walk = func(p *ber.Packet) {
		switch p.Tag {
		case goldap.FilterAnd, goldap.FilterOr:
			for _, c := range p.Children {
				walk(c)
			}
		case goldap.FilterEqualityMatch, goldap.FilterApproxMatch:
			if len(p.Children) == 2 && p.Children[1].Data.String() == probe {
				if a := p.Children[0].Data.String(); !slices.ContainsFunc(attrs, func(b string) bool { return strings.EqualFold(a, b) }) {
					attrs = append(attrs, a)
				}
			}
		}
	}
	walk(packet)
	return attrs, nil
}

// Authenticate implements auth.Authenticator.
func (l *Client) Authenticate(ctx context.Context, req auth.Request) (auth.Result, error) {
	// RFC 4513 §5.1.2: a simple bind with a DN and an empty password is an
	// unauthenticated bind, which servers answer with success. Never send it.
	if req.Password == "" || req.Login == "" {
		return auth.Result{}, auth.ErrInvalidCredentials
	}
	ctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	defer cancel()

	conn, err := l.connect(ctx)
	if err != nil {
		return auth.Result{}, l.unavailable("connecting", err)
	}
	defer conn.Close()
	// Closing the connection is the only way to interrupt go-ldap's
	// blocking calls when the caller gives up.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	if l.cfg.BindDN != "" {
		if err := conn.Bind(l.cfg.BindDN, l.cfg.BindPassword); err != nil {
			return auth.Result{}, l.unavailable("binding as the search DN", err)
		}
	}
	entries, err := l.search(conn, req.Login)
	if err != nil {
		return auth.Result{}, l.unavailable("searching", err)
	}
	if len(entries) != 1 {
		// Unknown (or ambiguous) user. Still bind, to a DN that does not
		// exist, so the reply takes about as long as for a wrong password:
		// otherwise the missing round trip tells a prober which logins exist.
		// (The server may still skip its password hashing for the dummy DN;
		// the network round trip, which dominates, is matched.)
		err := conn.Bind(l.dummyDN, req.Password)
		if err != nil && !isLDAPCredentialRejection(err) {
			return auth.Result{}, l.unavailable("binding (unknown user)", err)
		}
		return auth.Result{}, auth.ErrUnknownLogin
	}
	entry := entries[0]
	if err := conn.Bind(entry.DN, req.Password); err != nil {
		if isLDAPCredentialRejection(err) {
			// The account is known: name it, so that guesses on its other
			// spellings are slowed down together (see auth.Authenticator).
			return auth.Result{Login: l.identity(entry), Backend: "ldap"}, auth.ErrInvalidCredentials
		}
		return auth.Result{}, l.unavailable("binding as the user", err)
	}
	return l.result(entry), nil
}

func (l *Client) connect(ctx context.Context) (*goldap.Conn, error) {
	deadline, _ := ctx.Deadline()
	dialer := &net.Dialer{Deadline: deadline}
	opts := []goldap.DialOpt{goldap.DialWithDialer(dialer)}
	if l.cfg.TLS != nil {
		opts = append(opts, goldap.DialWithTLSConfig(l.cfg.TLS))
	}
	conn, err := goldap.DialURL(l.cfg.URL, opts...)
	if err != nil {
		return nil, err
	}
	// Per-operation timeout: a server that accepts but never answers must
	// not hold the request past its deadline.
	conn.SetTimeout(time.Until(deadline))
	if l.cfg.StartTLS {
		if err := conn.StartTLS(l.cfg.TLS); err != nil {
			conn.Close()
			return nil, fmt.Errorf("StartTLS: %w", err)
		}
	}
	return conn, nil
}

// search returns the entries matching the filter for login. It asks for at
// most two: one is the answer, two means ambiguous, and more is no use.
func (l *Client) search(conn *goldap.Conn, login string) ([]*goldap.Entry, error) {
	attrs := []string{l.cfg.MailAttribute, l.cfg.LoginAttribute}
	if l.cfg.AliasAttribute != "" {
		attrs = append(attrs, l.cfg.AliasAttribute)
	}
	attrs = append(attrs, l.nameAttrs...)
	sr := goldap.NewSearchRequest(l.cfg.BaseDN, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases,
		2, int(l.cfg.Timeout/time.Second), false, userFilter(l.cfg.Filter, login), attrs, nil)
	res, err := conn.Search(sr)
	if err != nil {
		// sizeLimitExceeded: more than two entries matched; ambiguous.
		if goldap.IsErrorWithCode(err, goldap.LDAPResultSizeLimitExceeded) && res != nil {
			return res.Entries, nil
		}
		return nil, err
	}
	return res.Entries, nil
}

func (l *Client) result(entry *goldap.Entry) auth.Result {
	res := auth.Result{Login: l.identity(entry), Backend: "ldap"}
	for _, a := range l.nameAttrs {
		for _, v := range entry.GetEqualFoldAttributeValues(a) {
			if v != "" && !strings.EqualFold(v, res.Login) && !slices.Contains(res.Names, v) {
				res.Names = append(res.Names, v)
			}
		}
	}
	res.Addresses = append(res.Addresses, entry.GetEqualFoldAttributeValues(l.cfg.MailAttribute)...)
	if l.cfg.AliasAttribute != "" {
		res.Addresses = append(res.Addresses, entry.GetEqualFoldAttributeValues(l.cfg.AliasAttribute)...)
	}
	return res
}

// identity is the entry's canonical identity: its first value of the login
// attribute, or its DN (which every entry has) when there is none.
func (l *Client) identity(entry *goldap.Entry) string {
	if v := entry.GetEqualFoldAttributeValue(l.cfg.LoginAttribute); v != "" {
		return v
	}
	return entry.DN
}

// isLDAPCredentialRejection reports whether a bind error is the server
// refusing these credentials (RFC 4511 §4.1.9 result codes), as opposed to
// the server or the network failing.
func isLDAPCredentialRejection(err error) bool {
	for _, code := range []uint16{
		goldap.LDAPResultInvalidCredentials,          // 49: wrong password / no such DN
		goldap.LDAPResultInappropriateAuthentication, // 48: e.g. entry has no password
		goldap.LDAPResultInsufficientAccessRights,    // 50
		goldap.LDAPResultConstraintViolation,         // 19: password policy lockout
		goldap.LDAPResultInvalidDNSyntax,             // 34: an unusable DN from the directory
	} {
		if goldap.IsErrorWithCode(err, code) {
			return true
		}
	}
	return false
}

func (l *Client) unavailable(doing string, err error) error {
	l.log.Warn("ldap auth unavailable", "doing", doing, "err", err)
	return fmt.Errorf("auth: ldap %s: %s: %w: %w", l.cfg.URL, doing, auth.ErrUnavailable, err)
}
