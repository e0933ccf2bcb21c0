package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/postern/postern/internal/autoconfig"
	"github.com/postern/postern/proxy"
)

// listenHTTPS is the --listen mode of the autoconfig HTTPS listener. It is
// split off here, before proxy.ParseListener sees the SMTP listeners.
const listenHTTPS = "https="

// Limits of the autoconfig HTTPS listener: the documents are small and
// a client needs one request, so a slow or oversized peer is cut short.
const (
	httpReadHeaderTimeout = 10 * time.Second
	httpReadTimeout       = 30 * time.Second
	httpWriteTimeout      = 30 * time.Second
	httpIdleTimeout       = 60 * time.Second
	httpMaxHeaderBytes    = 16 << 10
	httpShutdownTimeout   = 5 * time.Second
)

// splitListen separates the https=ADDR entries of --listen from the SMTP
// ones. At most one HTTPS listener. A --listen that names no SMTP listener
// (only https=) keeps the SMTP defaults: adding the autoconfig listener must
// not silently remove the submission ports (issue 23).
func splitListen(list []string) (smtp []string, https string, err error) {
	for _, l := range list {
		if len(l) >= len(listenHTTPS) && strings.EqualFold(l[:len(listenHTTPS)], listenHTTPS) {
			addr := l[len(listenHTTPS):]
			if https != "" {
				return nil, "", errors.New("--listen: only one https= listener")
			}
			if _, _, err := net.SplitHostPort(addr); err != nil {
				return nil, "", fmt.Errorf("--listen %q: %w", l, err)
			}
			https = addr
			continue
		}
		smtp = append(smtp, l)
	}
	if len(smtp) == 0 {
		smtp = defaultSMTPListen()
	}
	return smtp, https, nil
}

// buildAutoconfig builds the document server from the flags, or returns nil
// without --autoconfig-domain. cert returns the certificate served for a
// name (the Apple profile is signed with it); nil leaves profiles unsigned.
func buildAutoconfig(c *cli.Context, hostname string, listeners []proxy.Listener, httpsAddr string,
	cert func(string) (*tls.Certificate, error), log *slog.Logger) (*autoconfig.Server, error) {
	domains := c.StringSlice("autoconfig-domain")
	if len(domains) == 0 {
		if httpsAddr != "" {
			return nil, errors.New("--listen https= needs --autoconfig-domain (the documents it serves)")
		}
		return nil, nil
	}
	cfg := autoconfig.Config{
		Domains:      domains,
		Username:     c.String("autoconfig-username"),
		MTASTSMode:   c.String("mta-sts-mode"),
		MTASTSMX:     c.StringSlice("mta-sts-mx"),
		MTASTSMaxAge: c.Duration("mta-sts-max-age"),
		TLSRPTEmail:  c.String("tls-rpt-email"),
		Certificate:  cert,
		Log:          log,
	}
	for _, l := range listeners {
		port, err := portOf(l.Addr)
		if err != nil {
			return nil, fmt.Errorf("--listen %s: %w", l.Addr, err)
		}
		cfg.Submission = append(cfg.Submission, autoconfig.Endpoint{Host: hostname, Port: port, ImplicitTLS: l.Mode == proxy.ModeTLS})
	}
	if httpsAddr != "" {
		port, err := portOf(httpsAddr)
		if err != nil {
			return nil, fmt.Errorf("--listen https=%s: %w", httpsAddr, err)
		}
		cfg.HTTPSPort = port
	}
	if imap := c.String("autoconfig-imap"); imap != "" {
		host, _, err := net.SplitHostPort(imap)
		if err != nil {
			return nil, fmt.Errorf("--autoconfig-imap: %w", err)
		}
		port, err := portOf(imap)
		if err != nil {
			return nil, fmt.Errorf("--autoconfig-imap: %w", err)
		}
		// 993 is IMAP over implicit TLS (RFC 8314 §7); any other port is
		// taken to offer STARTTLS.
		cfg.IMAP = &autoconfig.Endpoint{Host: host, Port: port, ImplicitTLS: port == 993}
	}
	s, err := autoconfig.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("--autoconfig-*: %w", err)
	}
	return s, nil
}

func portOf(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	if n, err := strconv.Atoi(p); err == nil {
		return n, nil
	}
	return net.LookupPort("tcp", p)
}

// newHTTPServer is every HTTP server of serve (autoconfig, metrics):
// bounded reads, writes, idle time and headers; net/http bounds a TLS
// handshake by the shortest of the read, header and write timeouts (10 s).
// The server's own errors (TLS handshakes, bad requests) go to the debug
// log. The number of connections is bounded by the listener (httpCaps).
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// serveHTTPS serves the documents over TLS on ln (the same TLSConfig as the
// SMTP listeners, so TLS-ALPN-01 validations are answered here too) until
// ctx ends.
func serveHTTPS(ctx context.Context, ln net.Listener, tlsConf *tls.Config, h http.Handler, log *slog.Logger) error {
	srv := newHTTPServer(h, log)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(tls.NewListener(ln, tlsConf)); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("autoconfig HTTPS listener: %w", err)
	}
	return nil
}
