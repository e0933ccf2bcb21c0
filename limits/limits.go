package limits

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/postern/postern/limits/state"
	"github.com/postern/postern/policy"
)

// The names of the sending limits, in log lines, metrics labels, alerts and
// the limit file.
const (
	LimitMessages   = "messages"
	LimitRecipients = "recipients"
	limitRejected   = "rejected-ratio"
)

// LimitsConfig sets the per-login sending limits and the suspension policy.
// Zero values take the defaults in defaults.go where marked.
type LimitsConfig struct {
	// Store holds the counters (state.Memory, or Redis shared by replicas).
	Store state.Store
	// Messages and Recipients are the limits of a login the limit file
	// does not name. The zero Rate means no limit.
	Messages, Recipients Rate
	// SuspendAfter suspends a login whose attempts reach this many times a
	// limit within its window; 0 never.
	SuspendAfter int
	// SuspendRejectedPercent suspends a login when more than this per cent
	// of at least SuspendRejectedMin recipients were refused by the
	// upstream within SuspendRejectedWindow; 0 never.
	SuspendRejectedPercent int
	SuspendRejectedMin     int           // zero value DefaultSuspendRejectedMin
	SuspendRejectedWindow  time.Duration // zero value DefaultSuspendRejectedWindow
	SuspendFor             time.Duration // zero value DefaultSuspendFor
	SuspendRecheck         time.Duration // zero value DefaultSuspendRecheck
	// StoreTimeout bounds each store call; zero value DefaultStateTimeout.
	StoreTimeout time.Duration
	// Alerts gets the suspension and lockout events (log line + webhook).
	Alerts  *Alerter
	Metrics Metrics
	Log     *slog.Logger
	Now     func() time.Time
}

// Limits applies the sending limits and suspensions of logins. Counters are
// sliding logs of event times in the store (state.Store.Add): a login's
// count is exactly the events of the last WINDOW, which is what `postern
// status` shows and what a user can be told ("5 messages in the last hour"),
// and Add both checks and records in one atomic step, so N parallel
// sessions cannot pass a limit of N together. (GCRA would keep one
// timestamp per key instead of up to N, but its state is a theoretical
// arrival time, not a count anyone can read back.)
//
// A store that fails is logged and the check skipped: limits fail open,
// never closed for every user.
type Limits struct {
	cfg  LimitsConfig
	file atomic.Pointer[LimitFile]
}

// NewLimits returns the limits policy over cfg.Store.
func NewLimits(cfg LimitsConfig) *Limits {
	if cfg.SuspendRejectedMin <= 0 {
		cfg.SuspendRejectedMin = DefaultSuspendRejectedMin
	}
	if cfg.SuspendRejectedWindow <= 0 {
		cfg.SuspendRejectedWindow = DefaultSuspendRejectedWindow
	}
	if cfg.SuspendFor <= 0 {
		cfg.SuspendFor = DefaultSuspendFor
	}
	if cfg.SuspendRecheck <= 0 {
		cfg.SuspendRecheck = DefaultSuspendRecheck
	}
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = DefaultStateTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Alerts == nil {
		cfg.Alerts = NewAlerter(AlertConfig{Log: cfg.Log})
	}
	return &Limits{cfg: cfg}
}

// SetFile installs a new limit file (nil: the defaults for everyone). Safe
// while serving; the next check uses it.
func (l *Limits) SetFile(f *LimitFile) { l.file.Store(f) }

// LimitLogin is a login as the limits know it, worked out once when a
// session authenticates (NewLimitLogin), not again at every MAIL and RCPT:
// folding (NFKC, case folding) and hashing are the dearest steps of a
// check that runs per recipient.
type LimitLogin struct {
	name    string // state.FoldLogin: the one spelling, in log lines, alerts and replies
	key     string // state.LoginKey: the login in counter keys
	fileKey string // policy.NormalizeMapKey(name): the login in the limit file
}

// Name is the login's one spelling (state.FoldLogin), as log lines, alerts
// and replies give it.
func (l LimitLogin) Name() string { return l.name }

// NewLimitLogin folds login (state.FoldLogin): every spelling of a login
// gives the same LimitLogin, one budget and one suspension.
func NewLimitLogin(login string) LimitLogin {
	name := state.FoldLogin(login)
	return LimitLogin{name: name, key: state.LoginKey(name), fileKey: policy.NormalizeMapKey(name)}
}

// Rates returns the limits in force for login.
func (l *Limits) Rates(login string) (messages, recipients Rate) {
	return l.loginRates(NewLimitLogin(login))
}

func (l *Limits) loginRates(login LimitLogin) (messages, recipients Rate) {
	messages, recipients = l.cfg.Messages, l.cfg.Recipients
	if o, ok := l.file.Load().lookupKey(login.fileKey); ok {
		if o.Messages != nil {
			messages = *o.Messages
		}
		if o.Recipients != nil {
			recipients = *o.Recipients
		}
	}
	return messages, recipients
}

// Keys. The window is part of a limit's keys so that a limit file changing
// a login's window starts a fresh log instead of reading an old one with
// another window (the store wants one window per key).
// Logins appear in keys as state.LoginKey (folded, hashed: LimitLogin.key).
func countKey(limit string, r Rate, login LimitLogin) string {
	return "limit:" + limit + ":" + shortDuration(r.Window) + ":" + login.key
}
func overKey(limit string, r Rate, login LimitLogin) string {
	return "over:" + limit + ":" + shortDuration(r.Window) + ":" + login.key
}
func logOnceKey(limit string, r Rate, login LimitLogin) string {
	return "logged:" + limit + ":" + shortDuration(r.Window) + ":" + login.key
}
func rcptOKKey(login LimitLogin) string      { return "rcpt-ok:" + login.key }
func rcptRefusedKey(login LimitLogin) string { return "rcpt-refused:" + login.key }
func suspendOnceKey(login LimitLogin) string { return "suspend-event:" + login.key }

// ratioCap bounds the recipients remembered for the refused ratio per login
// and verdict (the memory store keeps a ring of that many times per key):
// beyond 1000 of each within the hour the ratio is read from the newest.
const ratioCap = 1000

func (l *Limits) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), l.cfg.StoreTimeout)
}

func (l *Limits) storeFailed(what string, err error) {
	l.cfg.Log.Warn("sending limits: state store failed, check skipped", "op", what, "err", err)
}

// Suspended reports login's suspension, if one is in force (AUTH answers
// 535 5.7.8 then, even with the right password).
func (l *Limits) Suspended(login LimitLogin) (state.Suspension, bool) {
	ctx, cancel := l.ctx()
	defer cancel()
	s, ok, err := l.cfg.Store.Suspended(ctx, login.name)
	if err != nil {
		l.storeFailed("suspended", err)
		return state.Suspension{}, false
	}
	return s, ok
}

// RecheckDue reports whether a session that last looked its login's
// suspension up at last should look again.
func (l *Limits) RecheckDue(last time.Time) bool {
	return l.cfg.Now().Sub(last) >= l.cfg.SuspendRecheck
}

// ReserveMessage counts one message for login at MAIL, before the upstream
// sees it, and refuses it (ErrLimitReached) when the login has used its
// limit. The message counts from here: a client cannot get it uncounted by
// aborting (RSET, QUIT, disconnecting, a DATA Postern refuses for what the
// client sent). Only the upstream gives it back, with ReleaseMessage: when
// it refuses the MAIL or the message at the final dot, or fails (no
// connection, lost mid-DATA), so the client's retry is not counted twice.
func (l *Limits) ReserveMessage(login LimitLogin, client netip.Addr) error {
	return l.reserve(LimitMessages, login, client)
}

// ReleaseMessage gives back the message ReserveMessage counted.
func (l *Limits) ReleaseMessage(login LimitLogin) { l.release(LimitMessages, login) }

// ReserveRecipient counts one recipient for login before its RCPT goes to
// the upstream, and refuses the RCPT that would cross the limit. Follow it
// with RecipientDone.
func (l *Limits) ReserveRecipient(login LimitLogin, client netip.Addr) error {
	return l.reserve(LimitRecipients, login, client)
}

// RecipientDone records the upstream's verdict on a reserved recipient:
// a refused one (refused) is given back and counts towards the refused
// ratio; upstreamReplied false (the connection failed) just gives it back.
func (l *Limits) RecipientDone(login LimitLogin, client netip.Addr, upstreamReplied, refused bool) {
	if !upstreamReplied || refused {
		l.release(LimitRecipients, login)
	}
	if !upstreamReplied || l.cfg.SuspendRejectedPercent <= 0 {
		return
	}
	ctx, cancel := l.ctx()
	defer cancel()
	w := l.cfg.SuspendRejectedWindow
	okKey, own := l.acceptedKey(login)
	if !refused {
		if own {
			if _, _, err := l.cfg.Store.Add(ctx, okKey, ratioCap, w); err != nil {
				l.storeFailed("add", err)
			}
		}
		return
	}
	bad, _, err := l.cfg.Store.Add(ctx, rcptRefusedKey(login), ratioCap, w)
	if err != nil {
		l.storeFailed("add", err)
		return
	}
	good, err := l.cfg.Store.Count(ctx, okKey, w)
	if err != nil {
		l.storeFailed("count", err)
		return
	}
	total := good + bad
	if total >= l.cfg.SuspendRejectedMin && bad*100 > l.cfg.SuspendRejectedPercent*total {
		l.suspend(ctx, login, client, limitRejected, bad, total, w,
			fmt.Sprintf("%d of %d recipients refused by the upstream within %s", bad, total, shortDuration(w)))
	}
}

// acceptedKey is where login's recipients accepted by the upstream within
// the refused-ratio window are read: the recipient limit's own log when it
// spans that window (no second write per RCPT, the "one round trip" budget),
// else a log of its own (own true: RecipientDone writes it).
func (l *Limits) acceptedKey(login LimitLogin) (key string, own bool) {
	r := l.rate(LimitRecipients, login)
	if !r.Unlimited() && r.Window >= l.cfg.SuspendRejectedWindow {
		return countKey(LimitRecipients, r, login), false
	}
	return rcptOKKey(login), true
}

func (l *Limits) reserve(limit string, login LimitLogin, client netip.Addr) error {
	rate := l.rate(limit, login)
	if rate.Unlimited() {
		return nil
	}
	ctx, cancel := l.ctx()
	defer cancel()
	count, added, err := l.cfg.Store.Add(ctx, countKey(limit, rate, login), rate.N, rate.Window)
	if err != nil {
		l.storeFailed("add", err)
		return nil
	}
	if added {
		return nil
	}
	l.overLimit(ctx, limit, rate, login, client, count)
	return ErrLimitReached
}

func (l *Limits) release(limit string, login LimitLogin) {
	rate := l.rate(limit, login)
	if rate.Unlimited() {
		return
	}
	ctx, cancel := l.ctx()
	defer cancel()
	if err := l.cfg.Store.RemoveNewest(ctx, countKey(limit, rate, login)); err != nil {
		l.storeFailed("remove", err)
	}
}

func (l *Limits) rate(limit string, login LimitLogin) Rate {
	m, r := l.loginRates(login)
	if limit == LimitMessages {
		return m
	}
	return r
}

// overLimit handles an attempt refused for being over rate: the metric,
// one log line per window (fail2ban's), and the count of attempts over the
// limit that leads to a suspension at SuspendAfter times the limit.
func (l *Limits) overLimit(ctx context.Context, limit string, rate Rate, login LimitLogin, client netip.Addr, count int) {
	l.cfg.Metrics.LimitReached(limit)
	if first, err := l.cfg.Store.Once(ctx, logOnceKey(limit, rate, login), rate.Window); err != nil {
		l.storeFailed("once", err)
	} else if first {
		l.cfg.Log.Warn("sending limit reached", "login", login.name, "limit", limit,
			"count", count, "max", rate.N, "window", shortDuration(rate.Window), "client", client.String())
	}
	if l.cfg.SuspendAfter <= 0 {
		return
	}
	// Attempts within the window = the rate.N that were accepted + those
	// over the limit, so SuspendAfter×N attempts are (SuspendAfter-1)×N
	// over it.
	overMax := (l.cfg.SuspendAfter - 1) * rate.N
	over := 1
	if overMax > 0 {
		var err error
		if over, _, err = l.cfg.Store.Add(ctx, overKey(limit, rate, login), overMax, rate.Window); err != nil {
			l.storeFailed("add", err)
			return
		}
	}
	if over >= overMax {
		attempts := rate.N + over
		l.suspend(ctx, login, client, limit, attempts, rate.N, rate.Window,
			fmt.Sprintf("%d %s attempts within %s, limit %s (%dx)", attempts, limit, shortDuration(rate.Window), rate, l.cfg.SuspendAfter))
	}
}

// suspendRace is how long the Once that settles which replica suspends a
// login lasts: only replicas deciding at about the same moment race; later
// attempts find the suspension itself.
const suspendRace = time.Minute

// suspend suspends login once: the suspension, its log line, metric and
// alert are made by the first replica to decide it, not again by the
// attempts that keep arriving on sessions already logged in.
func (l *Limits) suspend(ctx context.Context, login LimitLogin, client netip.Addr, limit string, count, max int, window time.Duration, reason string) {
	if _, already, err := l.cfg.Store.Suspended(ctx, login.name); err != nil {
		l.storeFailed("suspended", err)
		return
	} else if already {
		return
	}
	first, err := l.cfg.Store.Once(ctx, suspendOnceKey(login), suspendRace)
	if err != nil {
		l.storeFailed("once", err)
		return
	}
	if !first {
		return
	}
	now := l.cfg.Now()
	s := state.Suspension{Reason: reason, Since: now, Until: now.Add(l.cfg.SuspendFor)}
	if err := l.cfg.Store.Suspend(ctx, login.name, s); err != nil {
		l.storeFailed("suspend", err)
		return
	}
	l.cfg.Metrics.Suspended(limit)
	l.cfg.Alerts.Send(AlertEvent{
		Event: AlertSuspension, Login: login.name, Limit: limit, Count: count, Max: max,
		Window: shortDuration(window), Reason: reason, Client: clientString(client),
		Time: now, Until: &s.Until,
	})
}

// lockedOut reports a client address that has just been locked out of AUTH
// (once per window, on any replica) to the alerts: Lockout.LockedOut, with
// the lockout's failures and window.
func (l *Limits) lockedOut(client netip.Addr, login string, failures int, window time.Duration) {
	ctx, cancel := l.ctx()
	defer cancel()
	first, err := l.cfg.Store.Once(ctx, "lockout-event:"+policy.ClientNetwork(client).String(), window)
	if err != nil {
		l.storeFailed("once", err)
		return
	}
	if first {
		l.cfg.Alerts.Send(AlertEvent{
			Event: AlertLockout, Login: login, Limit: "auth-failures", Count: failures, Max: failures,
			Window: shortDuration(window), Client: client.String(), Time: l.cfg.Now(),
		})
	}
}

func clientString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// Unsuspend lifts login's suspension and forgets its attempts over the
// limits, so that it is not suspended again by the next one; the limits
// themselves still apply. It reports whether there was a suspension.
func (l *Limits) Unsuspend(ctx context.Context, name string) (bool, error) {
	login := NewLimitLogin(name)
	was, err := l.cfg.Store.Unsuspend(ctx, login.name)
	if err != nil {
		return false, fmt.Errorf("lifting the suspension of %s: %w", login.name, err)
	}
	m, r := l.loginRates(login)
	keys := []string{suspendOnceKey(login), rcptRefusedKey(login), rcptOKKey(login),
		overKey(LimitMessages, m, login), overKey(LimitRecipients, r, login)}
	for _, k := range keys {
		if err := l.cfg.Store.Clear(ctx, k); err != nil {
			return was, fmt.Errorf("clearing %s: %w", k, err)
		}
	}
	l.cfg.Log.Warn("login unsuspended", "login", login.name, "was_suspended", was)
	return was, nil
}

// LoginStatus is what `postern status LOGIN` shows.
type LoginStatus struct {
	Login      string            `json:"login"`
	Messages   LimitStatus       `json:"messages"`
	Recipients LimitStatus       `json:"recipients"`
	Refused    RatioStatus       `json:"refused_recipients"`
	Suspension *state.Suspension `json:"suspension,omitempty"`
}

// LimitStatus is one limit of a login: its rate, the events counted in its
// window, and the attempts refused over it.
type LimitStatus struct {
	Limit string `json:"limit"` // "200/1h", "*"
	Count int    `json:"count"`
	Over  int    `json:"over"`
}

// RatioStatus is the upstream's verdicts on a login's recipients within
// the suspension's ratio window.
type RatioStatus struct {
	Window   string `json:"window"`
	Refused  int    `json:"refused"`
	Accepted int    `json:"accepted"`
}

// Status reads login's counters and suspension.
func (l *Limits) Status(ctx context.Context, name string) (LoginStatus, error) {
	login := NewLimitLogin(name)
	st := LoginStatus{Login: login.name}
	m, r := l.loginRates(login)
	var err error
	if st.Messages, err = l.limitStatus(ctx, LimitMessages, m, login); err != nil {
		return st, err
	}
	if st.Recipients, err = l.limitStatus(ctx, LimitRecipients, r, login); err != nil {
		return st, err
	}
	w := l.cfg.SuspendRejectedWindow
	st.Refused.Window = shortDuration(w)
	if st.Refused.Refused, err = l.cfg.Store.Count(ctx, rcptRefusedKey(login), w); err != nil {
		return st, fmt.Errorf("reading the counters of %s: %w", login.name, err)
	}
	okKey, _ := l.acceptedKey(login)
	if st.Refused.Accepted, err = l.cfg.Store.Count(ctx, okKey, w); err != nil {
		return st, fmt.Errorf("reading the counters of %s: %w", login.name, err)
	}
	s, ok, err := l.cfg.Store.Suspended(ctx, login.name)
	if err != nil {
		return st, fmt.Errorf("reading the suspension of %s: %w", login.name, err)
	}
	if ok {
		st.Suspension = &s
	}
	return st, nil
}

func (l *Limits) limitStatus(ctx context.Context, limit string, r Rate, login LimitLogin) (LimitStatus, error) {
	ls := LimitStatus{Limit: r.String()}
	if r.Unlimited() {
		return ls, nil
	}
	var err error
	if ls.Count, err = l.cfg.Store.Count(ctx, countKey(limit, r, login), r.Window); err != nil {
		return ls, fmt.Errorf("reading the counters of %s: %w", login.name, err)
	}
	if ls.Over, err = l.cfg.Store.Count(ctx, overKey(limit, r, login), r.Window); err != nil {
		return ls, fmt.Errorf("reading the counters of %s: %w", login.name, err)
	}
	return ls, nil
}
