package main

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"sync/atomic"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// sink is the common upstream of every peer: a plain SMTP server that
// accepts any envelope (and any AUTH PLAIN, so the generator can run its
// usual sequence against it as the ceiling) and discards the message.
type sink struct {
	srv      *smtp.Server
	ln       net.Listener
	messages atomic.Int64
	bytes    atomic.Int64
}

// startSinkTLS starts the sink: plain (tc nil), with STARTTLS offered
// (tc, the sink-starttls ceiling) or with implicit TLS (tests use it as a
// stand-in for a peer).
func startSinkTLS(addr string, tc *tls.Config, implicit bool) (*sink, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if implicit {
		ln = tls.NewListener(ln, tc)
	}
	s := &sink{ln: ln}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &sinkSession{s: s}, nil
	}))
	s.srv.Domain = "sink.invalid"
	s.srv.AllowInsecureAuth = true
	s.srv.MaxMessageBytes = 0
	s.srv.MaxRecipients = 0
	s.srv.MaxLineLength = 8192
	s.srv.EnableSMTPUTF8 = true
	s.srv.TLSConfig = tc
	s.srv.ErrorLog = log.New(io.Discard, "", 0)
	go s.srv.Serve(ln)
	return s, nil
}

func (s *sink) Addr() string { return s.ln.Addr().String() }

func (s *sink) Close() error { return s.srv.Close() }

func (s *sink) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

type sinkSession struct{ s *sink }

func (*sinkSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (*sinkSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(string, string, string) error { return nil }), nil
}

func (*sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (*sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (*sinkSession) Reset()                               {}
func (*sinkSession) Logout() error                        { return nil }

func (ss *sinkSession) Data(r io.Reader) error {
	n, err := io.Copy(io.Discard, r)
	if err != nil {
		return err
	}
	ss.s.messages.Add(1)
	ss.s.bytes.Add(n)
	return nil
}
