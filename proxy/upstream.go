package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// UpstreamConfig says how to reach the internal MTA.
type UpstreamConfig struct {
	Addr           string        // host:port
	HeloName       string        // our EHLO name towards the upstream
	DialTimeout    time.Duration // TCP connect + greeting
	CommandTimeout time.Duration // each command's reply
	DataTimeout    time.Duration // the reply after the final dot
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

// ParseUpstreamTLS checks an --upstream-tls value.
func ParseUpstreamTLS(s string) (string, error) {
	switch s = strings.ToLower(s); s {
	case "", "none":
		return "none", nil
	case "starttls", "tls":
		return s, nil
	}
	return "", fmt.Errorf("upstream TLS mode %q: want none, starttls or tls", s)
}

// upstream is one SMTP session with the internal MTA. A client session opens
// it at its first MAIL and keeps it for the next messages (RSET between
// aborted transactions), so a client sending ten messages costs one upstream
// connection.
type upstream struct {
	client        *smtp.Client
	inTransaction bool // MAIL sent, message not yet finished
	used          int  // messages started on this connection
}

func dialUpstream(ctx context.Context, cfg UpstreamConfig, id clientIdentity) (*upstream, error) {
	d := net.Dialer{Timeout: cfg.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to upstream %s: %w", cfg.Addr, err)
	}
	if cfg.TLS == "tls" {
		tc := tls.Client(conn, upstreamTLSConfig(cfg))
		tc.SetDeadline(time.Now().Add(cfg.DialTimeout))
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, fmt.Errorf("TLS with upstream %s: %w", cfg.Addr, err)
		}
		tc.SetDeadline(time.Time{})
		conn = tc
	}
	if cfg.TLS == "starttls" || (cfg.XCLIENT && id.login != "") {
		pc, err := upstreamPreamble(conn, cfg, id)
		if err != nil {
			conn.Close() // not pc: it is nil on error
			return nil, err
		}
		conn = pc
	}
	c := smtp.NewClient(conn)
	if cfg.CommandTimeout > 0 {
		c.CommandTimeout = cfg.CommandTimeout
	}
	if cfg.DataTimeout > 0 {
		c.SubmissionTimeout = cfg.DataTimeout
	}
	if err := c.Hello(cfg.HeloName); err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting upstream %s: %w", cfg.Addr, err)
	}
	if cfg.Username != "" {
		if err := c.Auth(sasl.NewPlainClient("", cfg.Username, cfg.Password)); err != nil {
			c.Close()
			return nil, fmt.Errorf("authenticating to upstream %s: %w", cfg.Addr, err)
		}
	}
	return &upstream{client: c}, nil
}

func upstreamTLSConfig(cfg UpstreamConfig) *tls.Config {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSConfig != nil {
		conf = cfg.TLSConfig.Clone()
	}
	if conf.ServerName == "" {
		conf.ServerName, _, _ = net.SplitHostPort(cfg.Addr)
	}
	return conf
}

// mail starts a transaction.
func (u *upstream) mail(from string, opts *smtp.MailOptions) error {
	u.used++
	if err := u.client.Mail(from, opts); err != nil {
		return err
	}
	u.inTransaction = true
	return nil
}

// reset aborts an open transaction (client RSET or a refused message).
func (u *upstream) reset() error {
	if !u.inTransaction {
		return nil
	}
	u.inTransaction = false
	return u.client.Reset()
}

// abort drops the connection in the middle of DATA. Closing the DATA writer
// would send the final dot and deliver a truncated message; closing the
// connection makes the upstream discard it (RFC 5321 §4.1.1.4).
func (u *upstream) abort() {
	u.inTransaction = false
	u.client.Close()
}

func (u *upstream) quit() {
	if err := u.client.Quit(); err != nil {
		u.client.Close()
	}
}

// upstreamReply turns an upstream *smtp.SMTPError into the reply the client
// gets: the upstream's own code and text are passed on, except that a 552 to
// RCPT becomes 452 (RFC 5321 §4.5.3.1.10: too many recipients is temporary).
// Any other error (network, protocol) becomes the given fallback 4xx.
func upstreamReply(err error, fallback *smtp.SMTPError) (*smtp.SMTPError, bool) {
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

// acceptedReply turns the upstream's 250 text after the final dot ("2.0.0 Ok:
// queued as 4Xk2..." ) into the reply the client gets: go-smtp writes any
// *smtp.SMTPError returned by Data as is, code 250 included.
func acceptedReply(statusText string) *smtp.SMTPError {
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
