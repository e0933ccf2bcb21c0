package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/limits"
	"github.com/postern/postern/limits/state"
)

// The AUTH verb of a session (RFC 4954): the mechanisms offered, the
// lockout and the login delay, verification by the backends, suspensions.
// The SASL mechanisms themselves are in sasl.go.

// AuthMechanisms offers PLAIN and LOGIN, only under TLS (RFC 4954 §4: no
// plain-text passwords), so go-smtp's EHLO never lists AUTH before STARTTLS.
func (s *session) AuthMechanisms() []string {
	if s.tls == nil {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	if s.tls == nil {
		return nil, replyTLSRequired
	}
	if s.srv.lockout != nil && s.srv.lockout.Blocked(s.cc.clientIP()) {
		s.log.Warn("auth locked out", "client", s.cc.clientIP().String())
		s.srv.metrics.authResult("", "locked_out")
		s.conn.CloseAfterReply()
		return nil, replyLockedOut
	}
	s.authMech = strings.ToUpper(mech)
	switch s.authMech {
	case sasl.Plain:
		return &plainServer{check: s.authenticate}, nil
	case sasl.Login:
		return &loginServer{check: s.authenticate}, nil
	}
	return nil, replyAuthMechanism
}

// authenticate asks the backends and turns the outcome into a reply. The
// client never learns whether the login exists: both failures give 535. The
// log line "auth failed" with client= is what the fail2ban filter matches.
//
// The attempt is counted against the client address before the credentials
// are verified (Limiter.Reserve) and given back when they were right, or
// moved to the address's budget of attempts that could not be checked: an
// address collects at most the lockout's MaxFailures verdicts per window
// however many connections it guesses on at once, and has at most that
// many verifications running.
func (s *session) authenticate(authzid, login, password string) error {
	ip := s.cc.clientIP()
	lim := s.srv.lockout
	if lim != nil && !lim.Reserve(ip) {
		s.log.Warn("auth locked out", "client", ip.String())
		s.srv.metrics.authResult("", "locked_out")
		s.conn.CloseAfterReply()
		return replyLockedOut
	}
	res, err := s.verify(authzid, login, password)
	if errors.Is(err, errAuthAbandoned) {
		return s.authAbandoned(ip, login, err)
	}
	var limitLogin limits.LimitLogin
	if err == nil {
		limitLogin = limits.NewLimitLogin(res.Login)
		if sp, suspended := s.suspended(limitLogin); suspended {
			s.srv.metrics.authResult(res.Backend, "suspended")
			s.log.Warn("auth refused: login suspended", "client", ip.String(), "login", res.Login,
				"reason", sp.Reason, "until", sp.Until.UTC().Format(time.RFC3339))
			// Then counted and answered exactly as a wrong password:
			// a reply or a connection cut of its own would tell a
			// guesser that the password is right.
			err = errSuspended
		}
	}
	switch {
	case err == nil:
		s.login, s.loginAddr, s.limitLogin = res.Login, res.Addresses, limitLogin
		s.loginNames = append([]string{res.Login}, res.Names...)
		s.suspensionChecked = time.Now()
		s.cc.loggedIn() // no more --login-timeout
		if lim != nil {
			lim.Release(ip)
			lim.Success(ip, login, res.Login)
		}
		s.srv.metrics.authResult(res.Backend, "ok")
		s.log.Info("auth ok", "client", ip.String(), "login", res.Login, "backend", res.Backend, "mech", s.authMech)
		return nil
	case errors.Is(err, auth.ErrInvalidCredentials):
		failures := s.cc.authFailures.Add(1)
		if lim != nil {
			// Both the spelling and the account it named (if a backend
			// said): guesses spread over spellings slow the account down.
			lim.ReservedFailure(ip, login, res.Login)
		}
		// A backend rejected the password while another was down
		// (auth.ErrRejectedWhileUnavailable): a failed guess all the
		// same, counted and logged for fail2ban like any other, or an
		// outage would switch the lockout off. Its reply is below.
		rejectedWhileDown := errors.Is(err, auth.ErrRejectedWhileUnavailable)
		// conn_failures counts this connection's failures (towards
		// --max-auth-failures-per-connection), not the address's: the
		// lockout and fail2ban count per address.
		attrs := []any{"client", ip.String(), "login", sanitizeLog(login), "account", sanitizeLog(res.Login), "conn_failures", failures}
		if rejectedWhileDown {
			attrs = append(attrs, "err", err)
		}
		s.log.Warn("auth failed", attrs...)
		if err != errSuspended { // counted as "suspended" above
			s.srv.metrics.authResult("", "invalid")
		}
		blocked := lim != nil && lim.Blocked(ip)
		if blocked {
			// The alert (once per window on any replica), whichever
			// reply this connection gets.
			lim.LockedOut(ip, sanitizeLog(login))
		}
		if int(failures) >= s.srv.cfg.MaxAuthFailures {
			s.conn.CloseAfterReply()
			return replyAuthTooMany
		}
		if blocked {
			s.conn.CloseAfterReply()
			return replyLockedOut
		}
		if rejectedWhileDown {
			// 454, not 535, though one backend did reject the password.
			// The login may live in the backend that is down with this
			// very password (a user of both, or a Dovecot FAIL that
			// cannot tell an unknown user): 535 would make the mail
			// client drop the password and ask its user for a "new" one
			// over an outage. And a login no backend that answered holds
			// gets 454 here as well (auth.Chain): 535 for the others
			// would tell a prober, during every outage, which logins the
			// users file holds. 454 is true for all of them.
			return replyAuthUnavailable
		}
		return replyAuthInvalid
	default:
		// A backend that is down is not a wrong password: 454, and the
		// attempt moves from the failures to the address's budget of
		// attempts that could not be checked (Lockout.MaxUnavailable),
		// so an outage is no unlimited supply of attempts.
		if lim != nil {
			lim.ReservedUnavailable(ip)
		}
		s.log.Error("auth unavailable", "client", ip.String(), "login", sanitizeLog(login), "err", err)
		s.srv.metrics.authResult("", "unavailable")
		if lim != nil && lim.Blocked(ip) {
			s.conn.CloseAfterReply()
			return replyLockedOut
		}
		// A connection that keeps trying while a backend is down is cut
		// like one that keeps failing.
		if int(s.cc.authTempFailures.Add(1)) >= s.srv.cfg.MaxAuthFailures {
			s.conn.CloseAfterReply()
		}
		return replyAuthUnavailable
	}
}

// errSuspended is the right password of a suspended login: a failure.
var errSuspended = fmt.Errorf("login suspended: %w", auth.ErrInvalidCredentials)

// errAuthAbandoned: the client left, or shutdown started, during the
// login's delay, before anything was verified.
var errAuthAbandoned = errors.New("auth abandoned during the login delay")

// authAbandoned ends an AUTH that waited out part of its login delay and
// was never verified: the attempt is given back (the password was not
// checked, so a guesser learns nothing and there is nothing to count),
// and the connection ends after the reply: 421 4.3.2 in a shutdown,
// else 454 to a client that has most likely gone.
func (s *session) authAbandoned(ip netip.Addr, login string, err error) error {
	if lim := s.srv.lockout; lim != nil {
		lim.Release(ip)
	}
	s.log.Info("auth abandoned", "client", ip.String(), "login", sanitizeLog(login), "err", err)
	s.conn.CloseAfterReply()
	if errors.Is(err, errServerStopping) {
		return replyShuttingDown
	}
	return replyAuthUnavailable
}

// verify checks the credentials with the backends, after the login's delay.
// Acting as another user (a PLAIN authzid other than the login) is not
// supported: it fails like a wrong password, and counts as one.
func (s *session) verify(authzid, login, password string) (auth.Result, error) {
	if authzid != "" && authzid != login {
		return auth.Result{}, auth.ErrInvalidCredentials
	}
	var slept time.Duration
	if lim := s.srv.lockout; lim != nil {
		if d := lim.LoginDelay(login); d > 0 {
			if err := s.waitLoginDelay(login, d); err != nil {
				return auth.Result{}, err
			}
			slept = d
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.srv.cfg.AuthTimeout)
	defer cancel()
	res, err := s.srv.auth.Authenticate(ctx, auth.Request{Login: login, Password: password, RemoteIP: s.cc.clientIP(), Secured: true})
	s.accountDelay(res.Login, login, slept)
	return res, err
}

// accountDelay holds the answer back until the login delay of the account
// the backend named has passed (slept of it already did, before verifying).
// The delay before verifying can only key on the spelling typed; this one
// keys on the account, which gets the failures of all its spellings, so a
// guesser gains nothing by switching spellings. (Its price: a slow answer
// to a fresh spelling tells that it names an account with recent failures,
// an account the guesser already knows of.)
func (s *session) accountDelay(account, typed string, slept time.Duration) {
	lim := s.srv.lockout
	if lim == nil || account == "" || state.FoldLogin(account) == state.FoldLogin(typed) {
		return
	}
	if d := lim.LoginDelay(account) - slept; d > 0 {
		// The verdict is in: a hang-up or shutdown ends the wait, but
		// the verdict stands (a wrong password still counts), so the
		// error is not passed on; go-smtp's reply then meets a closed
		// connection or the shutdown.
		_ = s.waitLoginDelay(account, d)
	}
}

// waitLoginDelay waits d, the login's delay after recent failures, unless
// the client hangs up or shutdown starts first (errAuthAbandoned): a
// delay of up to MaxLoginDelay must neither hold a dead connection, its
// goroutine and its reserved attempt nor hold the shutdown's drain up.
func (s *session) waitLoginDelay(login string, d time.Duration) error {
	s.log.Info("auth delayed", "client", s.cc.clientIP().String(), "login", sanitizeLog(login),
		"delay", d.String())
	ctx, stop := s.cc.untilHangup(s.srv.stopped)
	defer stop()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", errAuthAbandoned, context.Cause(ctx))
	}
}
