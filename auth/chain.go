package auth

import (
	"context"
	"errors"
	"fmt"
)

// Chain returns an Authenticator that tries backends in the given order; cmd
// wires the users file first (local and fastest), then Dovecot, then LDAP.
//
//   - The first success wins, so a login known to several backends is
//     accepted with the password of any of them.
//   - ErrInvalidCredentials from one backend moves on to the next: the user
//     may live in a later one.
//   - If no backend succeeded and one was unavailable, the answer depends on
//     what the others said. A backend that rejected the password of a login
//     it may hold (anything but ErrUnknownLogin: Dovecot cannot tell an
//     unknown user from a wrong password, so its FAIL counts as a rejection)
//     makes the result ErrRejectedWhileUnavailable: a guess that was
//     checked and failed, which the lockout must count, or an outage would
//     switch it off (a wrong password for a users-file login would go on to
//     a down LDAP and never be counted). Otherwise the result is
//     ErrUnavailable: the user might live in the backend that is down, and a
//     down backend must never look like a wrong password.
//   - Only when every backend rejected the credentials is the result
//     ErrInvalidCredentials (never ErrUnknownLogin: callers do not learn
//     which logins exist), with the identity of the first backend that
//     recognised the account (see Authenticator); so is
//     ErrRejectedWhileUnavailable.
func Chain(backends ...Authenticator) Authenticator {
	return chain(backends)
}

type chain []Authenticator

func (c chain) Authenticate(ctx context.Context, req Request) (Result, error) {
	var unavailable error
	rejected := false     // a backend rejected the password of a login it may hold
	var identified Result // the first rejection that named the account
	for i, b := range c {
		if err := ctx.Err(); err != nil {
			return identified, chainUnavailable(rejected,
				fmt.Errorf("auth: chain stopped before backend %d: %w: %w", i, ErrUnavailable, err))
		}
		res, err := b.Authenticate(ctx, req)
		switch {
		case err == nil:
			return res, nil
		case errors.Is(err, ErrUnknownLogin):
			continue
		case errors.Is(err, ErrInvalidCredentials):
			rejected = true
			if identified.Login == "" {
				identified = Result{Login: res.Login}
			}
		case unavailable == nil:
			// Any other error (ErrUnavailable or something unexpected) is a
			// backend problem; keep the first for the caller's log.
			unavailable = err
		}
	}
	if unavailable != nil {
		if !errors.Is(unavailable, ErrUnavailable) {
			unavailable = fmt.Errorf("%w: %w", ErrUnavailable, unavailable)
		}
		return identified, chainUnavailable(rejected, unavailable)
	}
	return identified, ErrInvalidCredentials
}

// chainUnavailable is the chain's answer when a backend could not answer
// (err, wrapping ErrUnavailable): ErrRejectedWhileUnavailable, matching
// ErrInvalidCredentials too, when another backend had rejected the password.
func chainUnavailable(rejected bool, err error) error {
	if !rejected {
		return err
	}
	return fmt.Errorf("%w: %w: %w", ErrRejectedWhileUnavailable, ErrInvalidCredentials, err)
}
