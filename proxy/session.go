package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postern/postern/limits"
	"github.com/postern/postern/limits/state"
	"github.com/postern/postern/policy"
	"github.com/postern/postern/proxy/upstream"
)

// session is one client connection between EHLO (or STARTTLS) and QUIT. Each
// SMTP verb is one short method applying the submission policy (Postfix
// submission with smtpd_tls_security_level=encrypt, smtpd_tls_auth_only=yes,
// permit_sasl_authenticated, reject_sender_login_mismatch); reset is the
// one place that clears per-message state.
type session struct {
	srv  *Server
	conn *smtp.Conn
	cc   *clientConn
	tls  *tls.ConnectionState
	log  *slog.Logger

	login     string   // the account's canonical identity (auth.Result.Login), "" if none
	loginAddr []string // addresses the auth backend says the login owns
	// loginNames are the names sender-map lines may give the account:
	// login, then the backend's auth.Result.Names (never the typed spelling).
	loginNames []string
	// limitLogin is login folded for the sending limits, once at AUTH.
	limitLogin limits.LimitLogin
	// authMech is the SASL mechanism of the latest AUTH (PLAIN or LOGIN),
	// logged with "auth ok": which clients still use LOGIN.
	authMech string
	// suspensionChecked is when the login's suspension was last looked up
	// (see Limits.RecheckDue).
	suspensionChecked time.Time

	// mu guards up and streaming: under BDAT, go-smtp runs Data in a
	// goroutine of its own, and Reset or Logout may come from another.
	mu        sync.Mutex
	up        *upstream.Conn   // upstream session, kept across messages
	upAt      *upstream.Target // the upstream up is connected to
	streaming bool             // Data is using up

	smtputf8 bool // the current MAIL had SMTPUTF8 (RFC 6531): non-ASCII addresses allowed
	// dsnDropLogged: this session has logged that its upstream dropped the
	// client's DSN parameters (once per session, not per command).
	dsnDropLogged bool

	// The upstream MAIL travels with the first RCPT (upstream.mailRcpt):
	// mail holds it until then; mailRefused is the upstream's refusal of
	// it, the answer to every RCPT of this transaction.
	mail        *pendingMail
	mailRefused *smtp.SMTPError

	// per message
	msgID   string
	from    string
	rcpts   int
	started time.Time
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if s.tls == nil {
		return replyTLSRequired
	}
	if s.login == "" && !policy.InNetworks(s.srv.cfg.MyNetworks, s.cc.clientIP()) {
		return replyAuthRequired
	}
	// go-smtp passes the path unquoted: parse it again, check ownership on
	// that, and send on the re-quoted form (see address). "" is <>.
	s.smtputf8 = opts != nil && opts.UTF8
	var sender *policy.Address
	if from != "" {
		a, err := policy.ParseAddress(from, s.smtputf8)
		if err != nil {
			s.log.Warn("bad sender address", "from", sanitizeLog(from), "err", err)
			return replyBadSender
		}
		sender, from = &a, a.String()
	}
	if s.login != "" && !policy.MayUse(s.srv.senderMap.Load(), s.loginNames, s.loginAddr, sender) {
		s.log.Warn("sender rejected", "login", s.login, "from", sanitizeLog(from))
		return replySenderNotOwned
	}
	// Counted before the upstream sees it, so parallel sessions of one
	// login cannot pass its limit together; given back only when the
	// upstream refuses (see Limits.ReserveMessage). Once per transaction:
	// go-smtp answers a MAIL inside one "503 5.5.1" without calling Mail
	// (go-smtp patch server-command-sequence-503), as nothing upstream would refuse it before the
	// first RCPT.
	lim := s.limits()
	if lim != nil && lim.RecheckDue(s.suspensionChecked) {
		// Suspended since this session logged in (by another
		// replica, or by the refused-recipients ratio).
		s.suspensionChecked = time.Now()
		if sp, suspended := lim.Suspended(s.limitLogin); suspended {
			s.log.Warn("mail refused: login suspended", "login", s.login, "reason", sp.Reason)
			return replyLimitReached(s.login)
		}
	}
	if lim != nil {
		if err := lim.ReserveMessage(s.limitLogin, s.cc.clientIP()); err != nil {
			return replyLimitReached(s.limitLogin.Name())
		}
	}
	// From here to the end of the message go-smtp counts a transaction,
	// which a shutdown lets finish (go-smtp patch shutdown-421).
	//
	// Nothing goes upstream yet: MAIL is sent with the first RCPT, one
	// round trip for both. An upstream refusal of MAIL is then the reply
	// to RCPT (as Postfix's smtpd_delay_reject gives it), so DATA is never
	// reached and the client never hears 250 for a refused message. A
	// MAIL followed by RSET or QUIT costs the upstream nothing.
	s.mail, s.mailRefused = &pendingMail{from: from, opts: opts}, nil
	s.msgID, s.from, s.rcpts, s.started = newID(), from, 0, time.Now()
	return nil
}

// upstreamMailOptions are the client's MAIL parameters as the upstream
// gets them: a declared SIZE grows by the Received header Postern adds,
// so an upstream near its limit refuses at
// MAIL, not at the final dot, what it is going to get. The header written at
// DATA has the same length (only its fixed-width date differs).
func (s *session) upstreamMailOptions(opts *smtp.MailOptions) *smtp.MailOptions {
	if opts == nil || opts.Size <= 0 {
		return opts
	}
	o := *opts
	o.Size += int64(len(policy.ReceivedHeader(s.receivedInfo())))
	return &o
}

// noteDSNDropped logs, once per session, that the client asked for DSN
// (RFC 3461: RET, ENVID, NOTIFY, ORCPT) and the upstream does not offer it:
// go-smtp's client leaves the parameters out, and the client is never told.
func (s *session) noteDSNDropped(up *upstream.Conn, mopts *smtp.MailOptions, ropts *smtp.RcptOptions) {
	asked := (mopts != nil && (mopts.Return != "" || mopts.EnvelopeID != "")) ||
		(ropts != nil && (len(ropts.Notify) > 0 || ropts.OriginalRecipient != ""))
	if !asked || s.dsnDropLogged || up.Supports("DSN") {
		return
	}
	s.dsnDropLogged = true
	s.log.Warn("DSN parameters dropped: the upstream does not offer DSN", "id", s.msgID)
}

// pendingMail is a client's MAIL not yet sent upstream.
type pendingMail struct {
	from string
	opts *smtp.MailOptions
}

// openUpstream starts the upstream transaction with its first recipient
// and returns the reply to that RCPT; when MAIL failed, that failure is the
// reply to every RCPT of the transaction.
//
// Failover happens here and only here, before any byte of the message is
// sent: the connection this session holds, then each upstream in
// Targets.Order (an idle pooled connection first, then a new one). An
// upstream that cannot be reached, greeted (EHLO, STARTTLS, XCLIENT, AUTH)
// within the dial timeout, or that drops or times out the MAIL and first
// RCPT, or answers MAIL with 4xx, gives way to the next. A reused
// connection may have been closed by the upstream's idle timeout meanwhile:
// that is no failure of the upstream, a new connection to it follows. A
// 5xx to MAIL and any reply to the RCPT are verdicts, passed on. Once
// DATA started there is no second try (Data): the client gets 4xx and
// retries, so nothing is delivered twice.
func (s *session) openUpstream(m *pendingMail, to string, ropts *smtp.RcptOptions) error {
	// reply is the last failure's, the client's when no upstream is left:
	// with one upstream, the reply it got before there were several.
	reply := replyUpstreamUnavailable
	// deferred are the upstreams that answered MAIL with 4xx: their
	// verdict on this transaction, not asked again.
	deferred := map[*upstream.Target]bool{}
	try := func(up *upstream.Conn, at *upstream.Target, reused bool) (error, bool) {
		s.setUpstream(up, at)
		done, deferredBy, r := s.startTransaction(up, at, reused, m, to, ropts)
		if se := (*smtp.SMTPError)(nil); !done && errors.As(r, &se) {
			reply, deferred[at] = se, deferredBy
		}
		return r, done
	}
	if up, at := s.upstreamConn(); up != nil {
		if r, done := try(up, at, true); done {
			return r
		}
	}
	for _, at := range s.srv.upstreams.Order(time.Now()) {
		if deferred[at] {
			continue
		}
		if up := at.Pool.Get(); up != nil {
			if r, done := try(up, at, true); done {
				return r
			}
			if deferred[at] {
				continue
			}
		}
		up, err := s.dial(at)
		if err != nil {
			reply = replyUpstreamUnavailable
			continue
		}
		if r, done := try(up, at, false); done {
			return r
		}
	}
	s.log.Error("no upstream took the transaction", "id", s.msgID, "upstreams", len(s.srv.upstreams))
	s.mailRefused = reply
	return reply
}

// dial connects to the upstream at, marking it failed if that fails.
func (s *session) dial(at *upstream.Target) (*upstream.Conn, error) {
	start := time.Now()
	up, err := upstream.Dial(context.Background(), at.Config, s.upstreamIdentity())
	s.srv.metrics.upstreamReply("connect", replyCode(err))
	if err != nil {
		at.Failed(time.Now())
		s.srv.perUpstream().upstreamFailure(at.Addr(), "connect")
		s.log.Error("upstream unavailable", "upstream", at.Addr(), "err", err)
		return nil, err
	}
	s.srv.metrics.upstreamTime("connect", start)
	return up, nil
}

// startTransaction sends MAIL and the first RCPT on up (the session's
// upstream now) and returns the client's reply. done is false when the
// next upstream is to be tried: up failed without a verdict, and has been
// dropped; reply is then the one to give if none is left, and deferred
// says it is the upstream's own 4xx to MAIL. reused says up was not dialed
// for this transaction: its failure without a reply does not count against
// the upstream (an idle timeout on its side).
func (s *session) startTransaction(up *upstream.Conn, at *upstream.Target, reused bool, m *pendingMail, to string, ropts *smtp.RcptOptions) (done, deferred bool, reply error) {
	s.noteDSNDropped(up, m.opts, ropts)
	mailErr, rcptErr := up.MailRcpt(m.from, s.upstreamMailOptions(m.opts), to, ropts)
	s.srv.metrics.upstreamReply("mail", replyCode(mailErr))
	switch {
	case mailErr == nil && (rcptErr == nil || isUpstreamReply(rcptErr)):
		at.Answered()
		return true, false, s.rcptResult(up, rcptErr)
	case mailErr == nil:
		// MAIL taken, then the connection broke: nothing of this
		// transaction is kept upstream once it is closed.
		s.log.Warn("upstream failed at RCPT, trying the next", "upstream", at.Addr(), "err", rcptErr)
		s.failedOver(up, at, reused, "rcpt")
		return false, false, replyUpstreamFailed
	}
	r, fromUpstream := upstream.Reply(mailErr, replyUpstreamUnavailable)
	switch {
	case fromUpstream && r.Code/100 == 5:
		at.Answered()
		s.log.Info("upstream refused sender", "from", m.from, "code", r.Code, "upstream", at.Addr())
		s.mailRefused = r
		return true, false, r
	case fromUpstream:
		s.log.Warn("upstream deferred sender, trying the next", "from", m.from, "code", r.Code, "upstream", at.Addr())
		s.dropUpstream(up)
		s.srv.perUpstream().upstreamFailure(at.Addr(), "mail")
		if r.Code == 421 { // the upstream is closing: it is going away
			at.Failed(time.Now())
		}
		return false, true, r
	}
	s.log.Warn("upstream MAIL failed", "upstream", at.Addr(), "reused", reused, "err", mailErr)
	s.failedOver(up, at, reused, "mail")
	return false, false, replyUpstreamUnavailable
}

// failedOver drops up after a failure without a reply; a connection made
// for this transaction marks its upstream failed.
func (s *session) failedOver(up *upstream.Conn, at *upstream.Target, reused bool, stage string) {
	s.dropUpstream(up)
	if !reused {
		at.Failed(time.Now())
		s.srv.perUpstream().upstreamFailure(at.Addr(), stage)
	}
}

func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	// As in Mail: forward the re-quoted form, so that a quoted local part
	// cannot carry parameters (NOTIFY=NEVER) into the upstream's RCPT.
	rcpt, perr := policy.ParseAddress(to, s.smtputf8)
	if perr != nil {
		s.log.Warn("bad recipient address", "to", sanitizeLog(to), "err", perr)
		return replyBadRecipient
	}
	to = rcpt.String()
	if s.mailRefused != nil {
		return s.mailRefused
	}
	m := s.mail
	var up *upstream.Conn
	if m == nil {
		if up = s.upstream(); up == nil {
			return replyUpstreamFailed
		}
	}
	lim := s.limits()
	if lim != nil {
		if err := lim.ReserveRecipient(s.limitLogin, s.cc.clientIP()); err != nil {
			return replyLimitReached(s.limitLogin.Name())
		}
	}
	if m != nil {
		s.mail = nil
		err := s.openUpstream(m, to, opts)
		if s.mailRefused != nil && lim != nil {
			// The upstream refused the MAIL (or was not reached): neither
			// the message nor this recipient was sent, so neither counts.
			lim.RecipientDone(s.limitLogin, s.cc.clientIP(), false, false)
			lim.ReleaseMessage(s.limitLogin)
		}
		return err
	}
	s.noteDSNDropped(up, nil, opts)
	// A later recipient has no failover: the transaction is open on up
	// with the recipients before it (their replies already given).
	return s.rcptResult(up, up.Rcpt(to, opts))
}

// rcptResult turns the upstream's answer to a RCPT into the client's reply,
// and gives the recipient's reservation back when the upstream refused it.
func (s *session) rcptResult(up *upstream.Conn, err error) error {
	lim := s.limits()
	s.srv.metrics.upstreamReply("rcpt", replyCode(err))
	if lim != nil {
		lim.RecipientDone(s.limitLogin, s.cc.clientIP(), err == nil || isUpstreamReply(err), err != nil)
	}
	if err != nil {
		reply, fromUpstream := upstream.Reply(err, replyUpstreamFailed)
		if !fromUpstream {
			s.log.Error("upstream RCPT failed", "err", err)
			s.dropUpstream(up)
			return reply
		}
		if reply.Code == 552 { // RFC 5321 §4.5.3.1.10
			reply.Code, reply.EnhancedCode = 452, smtp.EnhancedCode{4, 5, 3}
		}
		return reply
	}
	s.rcpts++
	return nil
}

// Data streams the message to the upstream and answers with the upstream's
// own reply: the client gets 250 only after the upstream said 250.
func (s *session) Data(r io.Reader) error {
	// The deadline stays until Reset, after the reply: go-smtp drains
	// what is left of a refused message first, and that drain must not
	// outlive the deadline either (a client dribbling its message never
	// heard the 451 and kept the connection).
	s.cc.startData(s.srv.cfg.DataTimeout)
	s.cc.messages.Add(1)
	up, at := s.startStreaming()
	if up == nil {
		return replyUpstreamFailed
	}
	defer s.stopStreaming()
	// go-smtp hands DATA over through its dot-unstuffing reader and BDAT
	// as the raw chunks.
	bdat := s.conn.DataByBDAT()
	src := &countingReader{r: r}
	// The last line ended here, not by go-smtp's client on the way out,
	// so the header check and the copier read what the upstream gets.
	r = policy.TerminateLastLine(src)
	if mode := s.srv.cfg.HeaderFrom; mode != policy.HeaderFromOff && mode != "" && s.login != "" {
		// The header section is read and judged before the upstream
		// gets DATA: a refused message never reaches it.
		whole, reply := s.checkHeaderFrom(r, mode)
		if reply != nil {
			s.logMessage(at, receivedSize(src, bdat), reply, nil)
			return reply
		}
		r = whole
	}
	copier := upstream.Copier{Received: policy.ReceivedHeader(s.receivedInfo()), DotStuffed: !bdat}
	if s.srv.cfg.Received == policy.ReceivedAnonymous {
		copier.Strip = upstream.StripAnonymous
	}
	var dot time.Time
	resp, n, bodyErr, err := up.Data(func(w io.Writer) (int64, error) {
		n, err := copier.Copy(w, r)
		dot = time.Now()
		return n, err
	})
	if bodyErr != nil {
		// The client's or the upstream's fault while streaming; up
		// has dropped the connection, the upstream saw no final dot.
		s.dropUpstream(up)
		reply := s.dataReadReply(bodyErr)
		if reply == replyDataTimeout || reply == replyShuttingDown {
			// The rest of the message is not coming in time (or the
			// drain of a shutdown has ended): after the reply nothing
			// the client sends can be read as a command, so the
			// connection ends (RFC 5321 §4.5.3.2.7).
			s.conn.CloseAfterReply()
		}
		var uw *upstream.WriteError
		if errors.As(bodyErr, &uw) {
			// No second try once DATA started; the next
			// transaction skips this upstream for a while.
			at.Failed(time.Now())
			if lim := s.limits(); lim != nil {
				lim.ReleaseMessage(s.limitLogin) // the upstream failed: not sent, the client retries
			}
		}
		s.logMessage(at, receivedSize(src, bdat), reply, bodyErr)
		return reply
	}
	s.srv.metrics.upstreamReply("data", replyCode(err))
	if !dot.IsZero() {
		s.srv.metrics.upstreamTime("data", dot)
	}
	if err != nil {
		reply, fromUpstream := upstream.Reply(err, replyUpstreamFailed)
		if !fromUpstream {
			s.dropUpstream(up)
			at.Failed(time.Now()) // no second try, as above
		}
		if lim := s.limits(); lim != nil {
			lim.ReleaseMessage(s.limitLogin) // the upstream refused or failed it: not sent
		}
		s.logMessage(at, n, reply, err)
		return reply
	}
	reply := upstream.AcceptedReply(resp)
	s.logMessage(at, n, reply, nil)
	return reply
}

// countingReader counts the message bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// receivedSize reads what is left of a refused DATA message and returns
// the bytes the client sent (the size logged; it was those read up to the
// refusal, 0 for a From: refusal). go-smtp drains the rest after Data
// anyway, under the same deadline; a read that fails (over the size limit,
// timeout) ends the drain at once. A BDAT message is not drained: go-smtp
// refuses its later chunks as they come.
func receivedSize(src *countingReader, bdat bool) int64 {
	if !bdat {
		_, _ = io.Copy(io.Discard, src)
	}
	return src.n
}

// checkHeaderFrom reads the header section of the message from r and
// checks its From: against what the login owns; it returns the reader of
// the whole message, or the reply refusing it (enforce, or a read error).
func (s *session) checkHeaderFrom(r io.Reader, mode policy.HeaderFromMode) (io.Reader, *smtp.SMTPError) {
	block, whole, err := policy.ReadHeaderBlock(r)
	if err != nil {
		reply := s.dataReadReply(err)
		if reply == replyDataTimeout || reply == replyShuttingDown {
			s.conn.CloseAfterReply()
		}
		return nil, reply
	}
	why, addrs := policy.HeaderFromOwned(block, s.srv.senderMap.Load(), s.loginNames, s.loginAddr)
	if why == "" {
		return whole, nil
	}
	for i := range addrs {
		addrs[i] = sanitizeLog(addrs[i])
	}
	s.log.Warn("header from rejected", "id", s.msgID, "login", s.login, "mode", string(mode),
		"header_from", strings.Join(addrs, ","), "reason", why)
	if mode == policy.HeaderFromEnforce {
		return nil, replyHeaderFromNotOwned
	}
	return whole, nil
}

// limits is the sending-limits policy for this session's login: nil for a
// session without login (mynetworks) or a server without limits.
func (s *session) limits() SendingLimits {
	if s.login == "" {
		return nil
	}
	return s.srv.sending
}

// suspended reports login's suspension (none without sending limits).
func (s *session) suspended(login limits.LimitLogin) (state.Suspension, bool) {
	if s.srv.sending == nil {
		return state.Suspension{}, false
	}
	return s.srv.sending.Suspended(login)
}

// isUpstreamReply reports whether err is a reply of the upstream (as
// opposed to a connection failure).
func isUpstreamReply(err error) bool {
	_, fromUpstream := upstream.Reply(err, replyUpstreamFailed)
	return fromUpstream
}

// dataReadReply maps a failure while streaming DATA to the client's reply.
func (s *session) dataReadReply(err error) *smtp.SMTPError {
	var uw *upstream.WriteError
	var se *smtp.SMTPError
	var ne interface{ Timeout() bool }
	switch {
	case errors.As(err, &uw):
		return replyUpstreamFailed
	case errors.Is(err, upstream.ErrBareNewline):
		return replyBareNewline
	case errors.Is(err, upstream.ErrNULInData):
		return replyNULInMessage
	case errors.Is(err, upstream.ErrDotBareLF):
		return replyDotBareLF
	case errors.As(err, &se) && se.Code == smtp.ErrDataTooLarge.Code:
		return replyMessageTooBig
	case errors.As(err, &ne) && ne.Timeout() && s.srv.stopping.Load():
		// go-smtp interrupted the read: the shutdown's drain has ended.
		return replyShuttingDown
	case errors.As(err, &ne) && ne.Timeout():
		return replyDataTimeout
	}
	return replyUpstreamFailed
}

func (s *session) receivedInfo() policy.ReceivedInfo {
	ri := policy.ReceivedInfo{
		Mode:   s.srv.cfg.Received,
		By:     s.srv.cfg.Hostname,
		ID:     s.msgID,
		TLS:    s.tls,
		Authed: s.login != "",
		Now:    time.Now(),
	}
	if ri.Mode == policy.ReceivedFull {
		ri.Helo = s.conn.Hostname()
		ri.ClientIP = s.cc.clientIP().String()
	}
	return ri
}

// logMessage logs and counts a message's outcome; at is the upstream its
// DATA went to (or would have).
func (s *session) logMessage(at *upstream.Target, size int64, reply *smtp.SMTPError, err error) {
	attrs := []any{
		"id", s.msgID, "listener", s.cc.listener, logAttrsTLS(s.tls), "login", s.login,
		"from", s.from, "rcpts", s.rcpts, "size", size,
		"reply", replyText(reply),
		"duration", time.Since(s.started).Round(time.Millisecond).String(),
	}
	attrs = append(attrs, "upstream", at.Addr())
	s.srv.perUpstream().upstreamMessage(at.Addr(), reply.Code)
	if err != nil {
		attrs = append(attrs, "err", err.Error())
	}
	s.srv.metrics.message(reply.Code, size)
	if reply.Code/100 == 2 {
		s.log.Info("message accepted", attrs...)
	} else {
		s.log.Warn("message rejected", attrs...)
	}
}

// Reset is called by go-smtp on RSET, after each DATA and on a repeated EHLO.
func (s *session) Reset() {
	if up, streaming := s.upstreamState(); streaming {
		// A BDAT transfer abandoned while Data still streams it:
		// close, so the upstream never sees a final dot.
		s.dropUpstream(up)
	} else if up != nil && up.Reset() != nil {
		s.dropUpstream(up)
	}
	s.from, s.rcpts, s.msgID = "", 0, ""
	s.mail, s.mailRefused = nil, nil
	s.cc.endData()
}

// Logout ends the session (QUIT, disconnect, or STARTTLS replacing it).
func (s *session) Logout() error {
	up, streaming := s.upstreamState()
	switch {
	case up == nil:
	case streaming:
		s.dropUpstream(up) // an abandoned BDAT transfer, as in Reset
	default:
		_, at := s.upstreamConn()
		s.setUpstream(nil, nil)
		if !at.Pool.Put(up) {
			up.Quit()
		}
	}
	return nil
}

func (s *session) upstream() *upstream.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.up
}

// upstreamConn is the session's upstream connection and where it goes.
func (s *session) upstreamConn() (*upstream.Conn, *upstream.Target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.up, s.upAt
}

func (s *session) upstreamState() (*upstream.Conn, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.up, s.streaming
}

func (s *session) setUpstream(up *upstream.Conn, at *upstream.Target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.up, s.upAt = up, at
}

// startStreaming marks the upstream as Data's until stopStreaming.
func (s *session) startStreaming() (*upstream.Conn, *upstream.Target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.up != nil {
		s.streaming = true
	}
	return s.up, s.upAt
}

func (s *session) stopStreaming() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streaming = false
}

// dropUpstream closes up, whatever it is doing, and forgets it if it is
// still this session's.
func (s *session) dropUpstream(up *upstream.Conn) {
	up.Abort()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.up == up {
		s.up, s.upAt = nil, nil
	}
}

// sanitizeLog keeps a client-chosen string printable and short in logs.
func sanitizeLog(s string) string {
	if len(s) > 128 {
		s = s[:128]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// replyCode is the SMTP code of an upstream error, 250 for nil, 0 for an
// error that is not an SMTP reply.
func replyCode(err error) int {
	if err == nil {
		return 250
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// upstreamIdentity is what Postern may tell the upstream about the client
// (XCLIENT): the login always, the address only in --received full.
func (s *session) upstreamIdentity() upstream.Identity {
	id := upstream.Identity{Login: s.login}
	if s.srv.cfg.Received == policy.ReceivedFull {
		id.Addr = s.cc.clientIP()
	}
	return id
}
