package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// goSMTPClient drives a session with go-smtp's client, one command at a time.
type goSMTPClient struct {
	c    *smtp.Client
	to   string
	from string
	stop func() bool
}

func dialGoSMTP(ctx context.Context, cfg *loadConfig, tc *tls.Config) (client, error) {
	d := net.Dialer{Timeout: cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	// go-smtp sets and clears deadlines per command; the hard end of the run
	// is enforced by closing the connection.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	var c *smtp.Client
	switch cfg.Mode {
	case "starttls":
		c, err = smtp.NewClientStartTLS(conn, tc)
		if err == nil {
			err = c.Hello("postern-bench.invalid") // TLS handshake and the second EHLO
		}
	case "tls":
		tconn := tls.Client(conn, tc)
		if err = tconn.HandshakeContext(ctx); err == nil {
			c = smtp.NewClient(tconn)
			err = c.Hello("postern-bench.invalid")
		}
	default:
		c = smtp.NewClient(conn)
		err = c.Hello("postern-bench.invalid")
	}
	if err == nil && cfg.User != "" {
		err = c.Auth(sasl.NewPlainClient("", cfg.User, cfg.Password))
	}
	if err != nil {
		stop()
		conn.Close()
		return nil, err
	}
	c.CommandTimeout = cfg.Timeout
	c.SubmissionTimeout = 2 * cfg.Timeout
	return &goSMTPClient{c: c, from: cfg.From, to: cfg.To, stop: stop}, nil
}

func (g *goSMTPClient) send(msg []byte) error {
	if err := g.c.Mail(g.from, nil); err != nil {
		return err
	}
	if err := g.c.Rcpt(g.to, nil); err != nil {
		g.c.Reset()
		return err
	}
	w, err := g.c.Data()
	if err != nil {
		g.c.Reset()
		return err
	}
	if _, err := bytes.NewReader(msg).WriteTo(w); err != nil {
		return err
	}
	_, err = w.CloseWithResponse()
	return err
}

func (g *goSMTPClient) tlsGroup() (tls.CurveID, bool) {
	cs, ok := g.c.TLSConnectionState()
	return cs.CurveID, ok
}

func (g *goSMTPClient) quit() error { return g.c.Quit() }

func (g *goSMTPClient) close() {
	g.stop()
	g.c.Close()
}

// isReply tells a server's SMTP reply (the session goes on) from a broken
// connection.
func isReply(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se)
}
