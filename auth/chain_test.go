package auth

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
)

// stubAuth answers every request the same way and counts calls.
type stubAuth struct {
	login string // "" with err == nil: echo the request's login
	err   error
	calls atomic.Int64
}

func (s *stubAuth) Authenticate(_ context.Context, req Request) (Result, error) {
	s.calls.Add(1)
	if s.err != nil {
		return Result{}, s.err
	}
	login := s.login
	if login == "" {
		login = req.Login
	}
	return Result{Login: login, Addresses: []string{login}}, nil
}

func TestChain(t *testing.T) {
	invalid := func() *stubAuth { return &stubAuth{err: ErrInvalidCredentials} }
	wrappedInvalid := func() *stubAuth { return &stubAuth{err: fmt.Errorf("file: %w", ErrInvalidCredentials)} }
	down := func() *stubAuth { return &stubAuth{err: fmt.Errorf("dovecot: %w", ErrUnavailable)} }
	broken := func() *stubAuth { return &stubAuth{err: errors.New("something unexpected")} }
	ok := func(login string) *stubAuth { return &stubAuth{login: login} }
	unknown := func() *stubAuth { return &stubAuth{err: ErrUnknownLogin} }

	for _, tc := range []struct {
		name      string
		backends  []*stubAuth
		want      error
		wantLogin string
		wantCalls []int64
	}{
		{"first wins", []*stubAuth{ok("file"), ok("dovecot")}, nil, "file", []int64{1, 0}},
		{"invalid then ok", []*stubAuth{invalid(), ok("dovecot")}, nil, "dovecot", []int64{1, 1}},
		{"wrapped invalid then ok", []*stubAuth{wrappedInvalid(), ok("ldap")}, nil, "ldap", []int64{1, 1}},
		{"down then ok", []*stubAuth{down(), ok("ldap")}, nil, "ldap", []int64{1, 1}},
		{"all invalid", []*stubAuth{invalid(), invalid(), invalid()}, ErrInvalidCredentials, "", []int64{1, 1, 1}},
		{"invalid and down", []*stubAuth{invalid(), down(), invalid()}, ErrRejectedWhileUnavailable, "", []int64{1, 1, 1}},
		{"down first, then invalid", []*stubAuth{down(), invalid()}, ErrRejectedWhileUnavailable, "", []int64{1, 1}},
		{"unexpected error then invalid", []*stubAuth{broken(), invalid()}, ErrRejectedWhileUnavailable, "", []int64{1, 1}},
		{"unknown and down", []*stubAuth{unknown(), down()}, ErrUnavailable, "", []int64{1, 1}},
		{"down and unknown", []*stubAuth{down(), unknown()}, ErrUnavailable, "", []int64{1, 1}},
		{"unknown, invalid, down", []*stubAuth{unknown(), invalid(), down()}, ErrRejectedWhileUnavailable, "", []int64{1, 1, 1}},
		{"unexpected error is unavailable", []*stubAuth{broken(), unknown()}, ErrUnavailable, "", []int64{1, 1}},
		{"all unknown", []*stubAuth{unknown(), unknown()}, ErrInvalidCredentials, "", []int64{1, 1}},
		{"unknown and invalid", []*stubAuth{unknown(), invalid()}, ErrInvalidCredentials, "", []int64{1, 1}},
		{"invalid, down, ok", []*stubAuth{invalid(), down(), ok("ldap")}, nil, "ldap", []int64{1, 1, 1}},
		{"no backends", nil, ErrInvalidCredentials, "", nil},
		{"single down", []*stubAuth{down()}, ErrUnavailable, "", []int64{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var bs []Authenticator
			for _, b := range tc.backends {
				bs = append(bs, b)
			}
			res, err := Chain(bs...).Authenticate(context.Background(), Request{Login: "u", Password: "p"})
			if tc.want == nil {
				if err != nil || res.Login != tc.wantLogin {
					t.Fatalf("got %+v, %v; want login %q", res, err, tc.wantLogin)
				}
			} else {
				if !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
				if tc.want == ErrUnavailable && errors.Is(err, ErrInvalidCredentials) {
					t.Fatalf("an unavailable backend made the chain say invalid credentials: %v", err)
				}
				if tc.want != ErrRejectedWhileUnavailable && errors.Is(err, ErrRejectedWhileUnavailable) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
				if tc.want == ErrRejectedWhileUnavailable &&
					!(errors.Is(err, ErrInvalidCredentials) && errors.Is(err, ErrUnavailable)) {
					t.Fatalf("%v does not match both ErrInvalidCredentials and ErrUnavailable", err)
				}
				if err != nil && errors.Is(err, ErrUnknownLogin) {
					t.Fatalf("the chain let ErrUnknownLogin out: %v", err)
				}
			}
			for i, b := range tc.backends {
				if got := b.calls.Load(); got != tc.wantCalls[i] {
					t.Errorf("backend %d called %d times, want %d", i, got, tc.wantCalls[i])
				}
			}
		})
	}
}

func TestChainStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := &stubAuth{login: "x"}
	_, err := Chain(b).Authenticate(ctx, Request{Login: "u", Password: "p"})
	if !errors.Is(err, ErrUnavailable) || b.calls.Load() != 0 {
		t.Fatalf("cancelled context: %v after %d calls; want ErrUnavailable and no call", err, b.calls.Load())
	}
}

// namingAuth rejects every request, naming the account login.
type namingAuth struct{ login string }

func (n namingAuth) Authenticate(context.Context, Request) (Result, error) {
	return Result{Login: n.login, Backend: "stub"}, ErrInvalidCredentials
}

// TestChainRejectionNamesAccount: when every backend rejected, the Result
// names the account the first naming backend recognised, for the caller's
// login delay.
func TestChainRejectionNamesAccount(t *testing.T) {
	res, err := Chain(namingAuth{}, namingAuth{"mallory@example.com"}, namingAuth{"other"}).
		Authenticate(context.Background(), Request{Login: "mallory", Password: "x"})
	if !errors.Is(err, ErrInvalidCredentials) || res.Login != "mallory@example.com" {
		t.Fatalf("got %+v, %v; want ErrInvalidCredentials naming mallory@example.com", res, err)
	}
}
