package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/emersion/go-smtp"
)

// demoSink is the stand-in MTA of `postern demo`: a plain SMTP server on
// loopback that writes every message it receives as a file in dir.
type demoSink struct {
	dir   string
	log   *slog.Logger
	count atomic.Int64
	srv   *smtp.Server
	ln    net.Listener
}

func startDemoSink(dir string, log *slog.Logger) (*demoSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("starting the demo sink: %w", err)
	}
	s := &demoSink{dir: dir, log: log, ln: ln}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &sinkSession{sink: s}, nil
	}))
	s.srv.Domain = "sink.localhost"
	s.srv.MaxMessageBytes = 0
	s.srv.EnableSMTPUTF8 = true
	s.srv.ErrorLog = slogPrintfSink{log}
	go s.srv.Serve(ln)
	return s, nil
}

func (s *demoSink) Addr() string { return s.ln.Addr().String() }
func (s *demoSink) Close() error { return s.srv.Close() }

type sinkSession struct {
	sink *demoSink
	from string
	to   []string
}

func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}

// Data writes the message to a temporary name and renames it when complete,
// so a reader of the directory never sees half a message.
func (ss *sinkSession) Data(r io.Reader) error {
	n := ss.sink.count.Add(1)
	name := filepath.Join(ss.sink.dir, fmt.Sprintf("message-%04d.eml", n))
	f, err := os.CreateTemp(ss.sink.dir, ".incoming-*")
	if err != nil {
		return fmt.Errorf("demo sink: %w", err)
	}
	defer os.Remove(f.Name())
	size, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		return fmt.Errorf("demo sink: writing %s: %w", name, err)
	}
	ss.sink.log.Info("demo sink stored a message", "file", name, "from", ss.from, "to", ss.to, "size", size)
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0},
		Message: fmt.Sprintf("Ok: queued as DEMO%04d (stored in %s)", n, name)}
}

func (ss *sinkSession) Reset()        { ss.from, ss.to = "", nil }
func (ss *sinkSession) Logout() error { return nil }

type slogPrintfSink struct{ log *slog.Logger }

func (l slogPrintfSink) Printf(format string, v ...any) {
	l.log.Debug("demo sink", "detail", fmt.Sprintf(format, v...))
}
func (l slogPrintfSink) Println(v ...any) { l.log.Debug("demo sink", "detail", fmt.Sprint(v...)) }
