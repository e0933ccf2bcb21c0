// Package auth owns what every credential check shares: the Authenticator
// interface with its Request, Result and errors, the Chain that combines
// backends in order, and the Cache in front of them; the proxy only sees
// Authenticator. The backends live in packages of their own: auth/usersfile
// (the users file and its hash schemes), auth/dovecot (Dovecot's auth
// protocol) and auth/ldap (search-then-bind); cmd/postern wires them.
//
// auth must never import its backends (they import auth), nor proxy,
// limits, policy or anything under cmd: it is the bottom of the stack.
package auth

import (
	"context"
	"errors"
	"net/netip"
)

// ErrInvalidCredentials means the login is unknown or the password is wrong.
// Callers of Chain never see the two told apart: both give this error. (A
// backend that knows the login is unknown says so with ErrUnknownLogin, so
// that Chain can tell an outage from a wrong password.)
// A backend that recognised the account may name it in the Result returned
// beside the error (see Authenticator), for the caller's own accounting only.
var ErrInvalidCredentials = errors.New("auth: invalid credentials")

// ErrUnavailable means the backend could not give an answer (down, timeout,
// temporary failure). The client gets a 4xx and no lockout failure is
// counted (the proxy counts it toward a budget of its own).
var ErrUnavailable = errors.New("auth: backend temporarily unavailable")

// ErrRejectedWhileUnavailable is Chain's answer when one backend rejected
// the password of a login it may hold while another could not answer. The
// error also matches ErrInvalidCredentials and ErrUnavailable (errors.Is):
// callers that care test for it first. It is a failed guess (the lockout
// counts it), but the reply must stay temporary: the login may live in the
// backend that is down with this very password.
var ErrRejectedWhileUnavailable = errors.New("auth: credentials rejected while another backend was unavailable")

// ErrUnknownLogin is a backend's "no such login here" (the users file, an
// LDAP search without a match): an ErrInvalidCredentials that says nothing
// about the password, so an outage of a later backend must not turn it into
// a failed guess. Only errors.Is tells it apart: its text is
// ErrInvalidCredentials's, so no log line or message can. Chain folds it
// into ErrInvalidCredentials: the client's reply never depends on it.
var ErrUnknownLogin error = unknownLogin{}

type unknownLogin struct{}

func (unknownLogin) Error() string { return ErrInvalidCredentials.Error() }
func (unknownLogin) Unwrap() error { return ErrInvalidCredentials }

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
	// Login is the account's canonical identity, one per account whatever
	// spelling the client typed: the users file's entry login, Dovecot's
	// user=, the LDAP entry's login attribute (or its DN). Limits,
	// suspensions, the login delay and the logs key on it, and the sender
	// check accepts it.
	Login string
	// Names are further names of the account as the backend stores them
	// (LDAP: the entry's values of the attributes its filter compares the
	// login with, e.g. uid and mail). Sender-map lines naming any of them
	// apply whichever spelling the client typed. Never the typed login
	// itself: a backend may accept spellings nobody stored (Dovecot with
	// auth_username_format=%Ln takes any domain), and those must not
	// gain the addresses of a login spelled that way.
	Names []string
	// Addresses are extra sender addresses the backend says this login owns
	// (e.g. LDAP mail and alias attributes), on top of the sender map.
	Addresses []string
	// Backend names the backend that accepted the login ("file", "dovecot",
	// "ldap"), for logs and metrics.
	Backend string
}

// Authenticator checks credentials. It returns ErrInvalidCredentials (wrapped
// or not) for a wrong login or password, ErrUnavailable for a temporary
// failure, and never distinguishes an unknown user from a wrong password in
// its error. With ErrInvalidCredentials it may return a Result whose Login
// is the canonical identity of the account the login names (a known
// account, a wrong password): the caller then slows guessing at that
// account down whichever spelling is guessed on. Nothing but Login and
// Backend is set in that Result.
type Authenticator interface {
	Authenticate(ctx context.Context, req Request) (Result, error)
}
