package proxy

import (
	"bytes"

	"github.com/emersion/go-sasl"
)

// checkFunc verifies a login and password and returns the reply to send on
// failure (nil on success). authzid is the identity to act as (SASL PLAIN),
// "" when none was given; the check refuses one that is not the login, as a
// counted failure like a wrong password.
type checkFunc func(authzid, login, password string) error

// plainServer is SASL PLAIN (RFC 4616). It replaces go-sasl's so that a
// malformed response gets Postern's 501 instead of a raw library error.
type plainServer struct {
	check      checkFunc
	challenged bool // sent the empty challenge, the credentials come next
	done       bool
}

func (s *plainServer) Next(response []byte) ([]byte, bool, error) {
	if s.done {
		return nil, false, replyAuthMalformed
	}
	// No initial response: ask for it with an empty challenge ("334 "), and
	// take the next line as if it had been the initial response (RFC 4954 §4).
	// Only once: a second nil is not a response.
	if response == nil {
		if s.challenged {
			s.done = true
			return nil, false, replyAuthMalformed
		}
		s.challenged = true
		return []byte{}, false, nil
	}
	s.done = true
	parts := bytes.Split(response, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 {
		return nil, false, replyAuthMalformed
	}
	authzid, login, password := string(parts[0]), string(parts[1]), string(parts[2])
	if err := s.check(authzid, login, password); err != nil {
		return nil, false, err
	}
	return nil, true, nil
}

// loginServer is the obsolete but widely used LOGIN mechanism
// (draft-murchison-sasl-login): "Username:" then "Password:" challenges.
// go-sasl has no server side for it.
type loginServer struct {
	check checkFunc
	step  int
	login string
}

func (s *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch s.step {
	case 0:
		s.step = 1
		if response == nil {
			return []byte("Username:"), false, nil
		}
		s.login = string(response)
		s.step = 2
		return []byte("Password:"), false, nil
	case 1:
		s.login = string(response)
		s.step = 2
		return []byte("Password:"), false, nil
	case 2:
		s.step = 3
		if s.login == "" || bytes.IndexByte([]byte(s.login), 0) >= 0 {
			return nil, false, replyAuthMalformed
		}
		if err := s.check("", s.login, string(response)); err != nil {
			return nil, false, err
		}
		return nil, true, nil
	}
	return nil, false, replyAuthMalformed
}

var (
	_ sasl.Server = (*plainServer)(nil)
	_ sasl.Server = (*loginServer)(nil)
)
