// Package auth verifies SMTP AUTH credentials against the configured backends:
// a Dovecot-compatible passwd-file, Dovecot's auth socket and LDAP. Backends are
// combined and decorated (cache) here; the proxy only sees Authenticator.
package auth

import (
	"context"
	"errors"
	"net/netip"
)

// ErrInvalidCredentials means the login is unknown or the password is wrong.
// Backends never tell the two apart to their callers: both give this error.
var ErrInvalidCredentials = errors.New("auth: invalid credentials")

// ErrUnavailable means the backend could not give an answer (down, timeout,
// temporary failure). The client gets a 4xx and no lockout failure is counted.
var ErrUnavailable = errors.New("auth: backend temporarily unavailable")

// Request is one credential check.
type Request struct {
	Login    string
	Password string
	// RemoteIP is the client's address (after PROXY protocol), passed to
	// backends that apply their own penalties (Dovecot's rip=).
	RemoteIP netip.Addr
	// Secured is true when the client connection is TLS-protected.
	Secured bool
}

// Result describes an authenticated user.
type Result struct {
	// Login is the canonical login name (Dovecot's user=, the users file's
	// login), used for the sender check.
	Login string
	// Addresses are extra sender addresses the backend says this login owns
	// (e.g. LDAP mail and alias attributes), on top of the sender map.
	Addresses []string
	// Backend names the backend that accepted the login ("file", "dovecot",
	// "ldap"), for logs and metrics.
	Backend string
}

// Authenticator checks credentials. It returns ErrInvalidCredentials (wrapped
// or not) for a wrong login or password, ErrUnavailable for a temporary
// failure, and never distinguishes an unknown user from a wrong password.
type Authenticator interface {
	Authenticate(ctx context.Context, req Request) (Result, error)
}
