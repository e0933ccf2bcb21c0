package limits

import "time"

// The defaults of the lockout, the sending limits, the suspensions and the
// alerts, declared once: cmd/postern's flags show them (so `serve` and
// `demo` get them), and NewLockout, NewLimits and NewAlerter fall back to
// those marked "zero value" when a config leaves them unset. (The lockout's
// memory bound is the memory store's own, state.DefaultMemoryMaxKeys.)
const (
	DefaultLockoutMaxFailures = 10               // per address within the window; zero value
	DefaultLockoutWindow      = 15 * time.Minute // zero value
	// DefaultLockoutMaxUnavailable is how many AUTHs per address may end
	// "backend unavailable" (454) within the window (zero value). Ten
	// times the failures: a user whose client retries every minute
	// through an outage makes 15, an office of a few such users behind one
	// NAT address stays below it, and an attacker gets about one attempt
	// every nine seconds per address, none of them a verdict.
	DefaultLockoutMaxUnavailable = 100
	// DefaultLoginDelay is the wait before answering an AUTH for a login
	// with one recent failure; it doubles with each further failure up to
	// DefaultMaxLoginDelay (Dovecot's auth penalty cap). Zero values.
	DefaultLoginDelay    = 250 * time.Millisecond
	DefaultMaxLoginDelay = 15 * time.Second
)

// The sending limits and suspension (issue 12), declared once for the
// flags and for NewLimits' zero values.
var (
	DefaultLimitMessages   = Rate{N: 200, Window: time.Hour}
	DefaultLimitRecipients = Rate{N: 1000, Window: 24 * time.Hour}
)

const (
	// DefaultSuspendAfter: a login is suspended when its attempts reach
	// this many times a limit within the limit's window (the attempts
	// refused for being over the limit count).
	DefaultSuspendAfter = 3
	// DefaultSuspendRejectedRatio (per cent) of at least
	// DefaultSuspendRejectedMin recipients refused by the upstream within
	// DefaultSuspendRejectedWindow suspends a login (harvesting, a spam
	// run to made-up addresses).
	DefaultSuspendRejectedRatio  = 50
	DefaultSuspendRejectedMin    = 20
	DefaultSuspendRejectedWindow = time.Hour
	DefaultSuspendFor            = 24 * time.Hour
	// DefaultSuspendRecheck: a session already logged in looks its login's
	// suspension up again at MAIL when this long has passed since it last
	// did (at AUTH or a MAIL), so a suspension decided elsewhere stops it
	// within this time, for one store lookup per session and interval.
	DefaultSuspendRecheck = 30 * time.Second
	// DefaultStateTimeout bounds one call to the counters' store; past it
	// the check is skipped (fail open), never the session stalled.
	DefaultStateTimeout = 2 * time.Second
	// DefaultControlSocket is where `serve` answers `postern status` and
	// `postern unsuspend` (a unix socket, mode 0600).
	DefaultControlSocket = "/run/postern/control.sock"
	// DefaultAlertQueue bounds the webhook events waiting to be sent;
	// more are dropped and counted.
	DefaultAlertQueue = 256
	// DefaultAlertAttempts posts of one event to the webhook at most, the
	// first retry DefaultAlertBackoff after a failure and each next one
	// twice as long after the last; one post may take DefaultAlertTimeout.
	DefaultAlertAttempts = 5
	DefaultAlertBackoff  = time.Second
	DefaultAlertTimeout  = 10 * time.Second
)
