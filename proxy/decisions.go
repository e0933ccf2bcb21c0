package proxy

import (
	"net/netip"
	"time"

	"github.com/postern/postern/limits"
	"github.com/postern/postern/limits/state"
)

// What a session asks of the lockout and of the sending limits, declared
// here where it is used: limits.Lockout and limits.Limits implement them,
// tests put fakes in their place, and a session never reaches past them.

// AuthLimiter is the lockout policy (see limits.Lockout). Blocked addresses
// get 421 and are disconnected; LoginDelay slows guessing of one login.
// Every verification is preceded by Reserve and ended by ReservedFailure,
// ReservedUnavailable (no backend could check it) or Release, so that
// parallel attempts are counted before they are verified.
type AuthLimiter interface {
	Blocked(ip netip.Addr) bool
	Reserve(ip netip.Addr) bool
	Release(ip netip.Addr)
	// The logins of ReservedFailure, Failure and Success are the spelling
	// typed and the account's canonical identity (or ""): see
	// limits.Lockout.
	ReservedFailure(ip netip.Addr, logins ...string)
	ReservedUnavailable(ip netip.Addr)
	Failure(ip netip.Addr, logins ...string)
	Success(ip netip.Addr, logins ...string)
	LoginDelay(login string) time.Duration
	// LockedOut reports ip, found Blocked after a failure of login, to the
	// alerts (once per window, with the lockout's own numbers).
	LockedOut(ip netip.Addr, login string)
}

// SendingLimits is the per-login sending limits and suspensions (see
// limits.Limits). A refused reservation is an error (limits.ErrLimitReached)
// the session answers with replyLimitReached.
type SendingLimits interface {
	// Suspended reports login's suspension, checked at AUTH and, once
	// RecheckDue says so, again at MAIL.
	Suspended(login limits.LimitLogin) (state.Suspension, bool)
	RecheckDue(last time.Time) bool
	// ReserveMessage at MAIL and ReserveRecipient at RCPT count before the
	// upstream sees them; ReleaseMessage gives a message back when the
	// upstream refused or failed it, RecipientDone records the upstream's
	// verdict on a recipient.
	ReserveMessage(login limits.LimitLogin, client netip.Addr) error
	ReleaseMessage(login limits.LimitLogin)
	ReserveRecipient(login limits.LimitLogin, client netip.Addr) error
	RecipientDone(login limits.LimitLogin, client netip.Addr, upstreamReplied, refused bool)
}
