package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Config says how to reach the internal MTA.
type Config struct {
	Addr        string        // host:port
	HeloName    string        // our EHLO name towards the upstream
	DialTimeout time.Duration // TCP connect, TLS, greeting, XCLIENT and EHLO together
	// Timeout bounds every single read and write on the upstream
	// connection, renewed as the transfer makes progress (0: the default).
	Timeout time.Duration
	// TLS is "none" (default; the upstream trusts Postern by address),
	// "starttls" or "tls" (implicit). TLSConfig verifies the upstream.
	TLS       string
	TLSConfig *tls.Config
	// Username and Password, if set, authenticate to the upstream (AUTH
	// PLAIN, after TLS) for an MTA that does not trust Postern's address.
	Username, Password string
	// XCLIENT sends Postfix's XCLIENT LOGIN= (and ADDR= in full mode) so
	// the upstream logs the user and applies its own sender checks.
	XCLIENT bool
}

// ParseTLS checks an --upstream-tls value.
func ParseTLS(s string) (string, error) {
	switch s = strings.ToLower(s); s {
	case "", "none":
		return "none", nil
	case "starttls", "tls":
		return s, nil
	}
	return "", fmt.Errorf("upstream TLS mode %q: want none, starttls or tls", s)
}

// Conn is one SMTP session with the internal MTA. A client session opens
// it at its first MAIL and keeps it for the next messages (RSET between
// aborted transactions), so a client sending ten messages costs one upstream
// connection.
//
// It owns go-smtp's client and the transaction: nobody else touches them,
// and mu lets one goroutine at a time use them (under BDAT, go-smtp runs
// Session.Data in a goroutine of its own). The final dot is written only by
// data, after the whole message was copied; every other way out of a
// transaction closes the connection, so the upstream discards what it got.
type Conn struct {
	mu     sync.Mutex
	conn   net.Conn // under client; closed by abort from any goroutine
	client *smtp.Client
	// wire is conn when go-smtp's client reads and writes on it (not
	// when the client added TLS itself), for BDAT (dataChunked).
	wire          net.Conn
	inTransaction bool        // MAIL accepted, message not yet finished
	aborted       atomic.Bool // closed: never used again
}

// errUpstreamAborted is what a method of an aborted upstream returns.
var errUpstreamAborted = errors.New("upstream connection aborted")

// Dial connects and greets the upstream. Everything up to the
// end of EHLO shares one deadline, setupBy (DialTimeout), on top of the
// per-step timeout of timedConn; then only the per-step timeout applies.
//
// Three ways to get there, by what go-smtp's client can do itself:
//   - XCLIENT: upstreamPreamble speaks STARTTLS (if asked) and XCLIENT on
//     the bare connection, then go-smtp's client greets the new session;
//   - --upstream-tls starttls alone: go-smtp's client, EHLO with our name,
//     then its StartTLS (go-smtp patch client-starttls-after-hello), which refuses an upstream that does
//     not offer STARTTLS (never clear text);
//   - otherwise a plain or implicit-TLS connection and go-smtp's client.
func Dial(ctx context.Context, cfg Config, id Identity) (*Conn, error) {
	dialTimeout := cfg.DialTimeout
	if dialTimeout <= 0 {
		dialTimeout = DefaultDialTimeout
	}
	setupBy := time.Now().Add(dialTimeout)
	d := net.Dialer{Deadline: setupBy}
	conn, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to upstream %s: %w", cfg.Addr, err)
	}
	if cfg.TLS == "tls" {
		tc := tls.Client(conn, upstreamTLSConfig(cfg))
		tc.SetDeadline(setupBy)
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, fmt.Errorf("TLS with upstream %s: %w", cfg.Addr, err)
		}
		tc.SetDeadline(time.Time{})
		conn = tc
	}
	xclient := cfg.XCLIENT && id.Login != ""
	if xclient {
		pc, err := upstreamPreamble(conn, cfg, id, setupBy)
		if err != nil {
			conn.Close() // not pc: it is nil on error
			return nil, err
		}
		conn = pc
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	tconn := &timedConn{Conn: conn, timeout: timeout, setupBy: setupBy}
	c := smtp.NewClient(tconn)
	// BODY= as the client declared it, if the upstream takes it; not
	// BODY=8BITMIME on every message (go-smtp patch client-declared-body).
	c.DeclaredBody = true
	if cfg.TLS == "starttls" && !xclient {
		// Below go-smtp's TLS layer, timedConn bounds the handshake's
		// reads and writes too.
		if err := c.Hello(cfg.HeloName); err != nil {
			c.Close()
			return nil, fmt.Errorf("greeting upstream %s: %w", cfg.Addr, err)
		}
		if err := c.StartTLS(upstreamTLSConfig(cfg)); err != nil {
			c.Close()
			return nil, fmt.Errorf("STARTTLS with upstream %s: %w", cfg.Addr, err)
		}
	}
	if err := c.Hello(cfg.HeloName); err != nil {
		c.Close()
		if cfg.TLS == "starttls" && !xclient { // the TLS handshake runs here
			return nil, fmt.Errorf("STARTTLS with upstream %s (TLS handshake, EHLO): %w", cfg.Addr, err)
		}
		return nil, fmt.Errorf("greeting upstream %s: %w", cfg.Addr, err)
	}
	tconn.endSetup()
	if cfg.Username != "" {
		if err := c.Auth(sasl.NewPlainClient("", cfg.Username, cfg.Password)); err != nil {
			c.Close()
			return nil, fmt.Errorf("authenticating to upstream %s: %w", cfg.Addr, err)
		}
	}
	up := &Conn{conn: tconn, client: c}
	if cfg.TLS != "starttls" || xclient {
		up.wire = tconn
	}
	return up, nil
}

func upstreamTLSConfig(cfg Config) *tls.Config {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSConfig != nil {
		conf = cfg.TLSConfig.Clone()
	}
	if conf.ServerName == "" {
		conf.ServerName, _, _ = net.SplitHostPort(cfg.Addr)
	}
	return conf
}

// MailRcpt starts a transaction with its first recipient in one round
// trip: MAIL and RCPT in one write when the upstream offers PIPELINING
// (RFC 2920). mailErr is MAIL's outcome; if it is not nil there is no
// transaction and rcptErr is the upstream's answer to the orphan RCPT.
func (u *Conn) MailRcpt(from string, mopts *smtp.MailOptions, to string, ropts *smtp.RcptOptions) (mailErr, rcptErr error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.aborted.Load() {
		return errUpstreamAborted, errUpstreamAborted
	}
	mailErr, rcptErr = u.client.MailRcpt(from, mopts, to, ropts)
	if mailErr == nil {
		u.inTransaction = true
	}
	return u.checked(mailErr), u.checked(rcptErr)
}

// Supports reports whether the upstream's EHLO offered keyword.
func (u *Conn) Supports(keyword string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	ok, _ := u.client.Extension(keyword)
	return ok
}

// Rcpt adds a recipient to the open transaction.
func (u *Conn) Rcpt(to string, opts *smtp.RcptOptions) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.aborted.Load() {
		return errUpstreamAborted
	}
	return u.checked(u.client.Rcpt(to, opts))
}

// Data sends DATA, lets body write the message, and ends it with the final
// dot only if body returned no error (or, to an upstream offering CHUNKING,
// sends a message of up to bdatMax as one BDAT LAST once body is done:
// dataChunked); otherwise the connection is closed
// (RFC 5321 §4.1.1.4: the upstream then discards the message). resp is the
// upstream's text after the dot (its queue id). bodyErr is body's error,
// kept apart so the caller can tell the client's fault from the upstream's.
func (u *Conn) Data(body func(w io.Writer) (int64, error)) (resp string, n int64, bodyErr, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.aborted.Load() {
		return "", 0, nil, errUpstreamAborted
	}
	if wire := u.chunkingWire(); wire != nil {
		return u.dataChunked(wire, body)
	}
	w, err := u.client.Data()
	if err != nil {
		return "", 0, nil, u.checked(err)
	}
	if n, bodyErr = body(w); bodyErr != nil {
		u.Abort() // never w.Close: that would write the final dot
		return "", n, bodyErr, nil
	}
	r, err := w.CloseWithResponse()
	u.inTransaction = false
	if err != nil {
		return "", n, nil, u.checked(err)
	}
	return r.StatusText, n, nil, nil
}

// Reset ends an open transaction without a message (client RSET, a
// refused message); it does nothing between transactions.
func (u *Conn) Reset() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.aborted.Load() {
		return errUpstreamAborted
	}
	if !u.inTransaction {
		return nil
	}
	u.inTransaction = false
	return u.checked(u.client.Reset())
}

// idle reports whether the connection may serve another client session:
// alive and with no transaction open.
func (u *Conn) idle() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return !u.aborted.Load() && !u.inTransaction
}

// Quit ends the session politely; an open transaction without a message is
// dropped by the upstream. No DATA writer can be open here (data closes or
// aborts it before releasing mu), so go-smtp's client has no dot to write
// before QUIT.
func (u *Conn) Quit() { _ = u.quit() }

// quit is Quit with the upstream's answer (Probe wants it).
func (u *Conn) quit() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.aborted.Load() {
		u.Abort()
		return errUpstreamAborted
	}
	if err := u.client.Quit(); err != nil {
		u.Abort()
		return err
	}
	return nil
}

// Abort closes the connection, never writing anything more; safe from any
// goroutine and without mu, so it also stops a data call stuck in a write.
// A message in progress is discarded by the upstream (RFC 5321 §4.1.1.4).
func (u *Conn) Abort() {
	u.aborted.Store(true)
	u.conn.Close()
}

// checked aborts the connection after an error that is not an SMTP reply
// (network failure, timeout, protocol error): its state is unknown.
func (u *Conn) checked(err error) error {
	var se *smtp.SMTPError
	if err != nil && !errors.As(err, &se) {
		u.Abort()
	}
	return err
}

// timedConn gives the upstream connection deadlines of its own. Every
// Write gets one, renewed for every 64 KiB written, so a long message at
// any sane speed never trips it, but an upstream that stops reading fails
// the call within timeout. The reads of one reply share one deadline, set
// by the first read after a write (the command it answers): an upstream
// that dribbles its reply a byte at a time cannot stretch it beyond timeout
// either (renewed per read, a 32-byte reply at one byte a minute took half
// an hour). It decides the deadlines alone: go-smtp's client would clear
// its own during DATA. Used by one goroutine at a time (upstream.mu), except
// for Close.
type timedConn struct {
	net.Conn
	timeout time.Duration
	replyBy time.Time // read deadline of the reply being read; zero after a write
	// setupBy, until endSetup, caps every deadline: greeting, STARTTLS and
	// EHLO together take at most DialTimeout.
	setupBy time.Time
}

const timedWriteChunk = 64 << 10

// deadline is now+timeout, capped by setupBy during the setup.
func (c *timedConn) deadline() time.Time {
	d := time.Now().Add(c.timeout)
	if !c.setupBy.IsZero() && c.setupBy.Before(d) {
		return c.setupBy
	}
	return d
}

// endSetup lifts the setup cap once the upstream has answered EHLO.
func (c *timedConn) endSetup() {
	c.setupBy = time.Time{}
	c.replyBy = time.Time{}
}

func (c *timedConn) Read(b []byte) (int, error) {
	if c.replyBy.IsZero() {
		c.replyBy = c.deadline()
		if err := c.Conn.SetReadDeadline(c.replyBy); err != nil {
			return 0, err
		}
	}
	return c.Conn.Read(b)
}

func (c *timedConn) Write(b []byte) (int, error) {
	c.replyBy = time.Time{} // a command: its reply gets a fresh deadline
	written := 0
	for len(b) > 0 {
		p := b[:min(len(b), timedWriteChunk)]
		if err := c.Conn.SetWriteDeadline(c.deadline()); err != nil {
			return written, err
		}
		n, err := c.Conn.Write(p)
		written += n
		if err != nil {
			return written, err
		}
		b = b[n:]
	}
	return written, nil
}

func (c *timedConn) SetDeadline(time.Time) error      { return nil }
func (c *timedConn) SetReadDeadline(time.Time) error  { return nil }
func (c *timedConn) SetWriteDeadline(time.Time) error { return nil }

// Reply turns an upstream *smtp.SMTPError into the reply the client
// gets: the upstream's own code and text are passed on, except that a 552 to
// RCPT becomes 452 (RFC 5321 §4.5.3.1.10: too many recipients is temporary).
// Any other error (network, protocol) becomes the given fallback 4xx.
func Reply(err error, fallback *smtp.SMTPError) (*smtp.SMTPError, bool) {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return &smtp.SMTPError{Code: se.Code, EnhancedCode: enhancedOrDefault(se), Message: se.Message}, true
	}
	return fallback, false
}

func enhancedOrDefault(se *smtp.SMTPError) smtp.EnhancedCode {
	if se.EnhancedCode == smtp.EnhancedCodeNotSet || se.EnhancedCode == smtp.NoEnhancedCode {
		return smtp.EnhancedCode{se.Code / 100, 0, 0}
	}
	return se.EnhancedCode
}

// AcceptedReply turns the upstream's 250 text after the final dot ("2.0.0 Ok:
// queued as 4Xk2..." ) into the reply the client gets: go-smtp writes any
// *smtp.SMTPError returned by Data as is, code 250 included.
func AcceptedReply(statusText string) *smtp.SMTPError {
	code := smtp.EnhancedCode{2, 0, 0}
	msg := statusText
	if first, rest, ok := strings.Cut(statusText, " "); ok {
		if ec, ok := parseEnhanced(first); ok && ec[0] == 2 {
			code, msg = ec, rest
		}
	}
	if msg == "" {
		msg = "Ok: queued"
	}
	return &smtp.SMTPError{Code: 250, EnhancedCode: code, Message: msg}
}

func parseEnhanced(s string) (smtp.EnhancedCode, bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return smtp.EnhancedCode{}, false
	}
	var ec smtp.EnhancedCode
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 999 {
			return smtp.EnhancedCode{}, false
		}
		ec[i] = n
	}
	return ec, true
}
