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
//   - If no backend succeeded and at least one was unavailable, the result is
//     ErrUnavailable: the user might live in the backend that is down, and a
//     down backend must never look like a wrong password (that would give the
//     client a 535 and count a lockout failure against it).
//   - Only when every backend rejected the credentials is the result
//     ErrInvalidCredentials, with the identity of the first backend that
//     recognised the account (see Authenticator).
func Chain(backends ...Authenticator) Authenticator {
	return chain(backends)
}

type chain []Authenticator

func (c chain) Authenticate(ctx context.Context, req Request) (Result, error) {
	var unavailable error
	var identified Result // the first rejection that named the account
	for i, b := range c {
		if err := ctx.Err(); err != nil {
			return Result{}, fmt.Errorf("auth: chain stopped before backend %d: %w: %w", i, ErrUnavailable, err)
		}
		res, err := b.Authenticate(ctx, req)
		switch {
		case err == nil:
			return res, nil
		case errors.Is(err, ErrInvalidCredentials):
			if identified.Login == "" {
				identified = Result{Login: res.Login}
			}
			continue
		case unavailable == nil:
			// Any other error (ErrUnavailable or something unexpected) is a
			// backend problem; keep the first for the caller's log.
			unavailable = err
		}
	}
	if unavailable != nil {
		if errors.Is(unavailable, ErrUnavailable) {
			return Result{}, unavailable
		}
		return Result{}, fmt.Errorf("%w: %w", ErrUnavailable, unavailable)
	}
	return identified, ErrInvalidCredentials
}
