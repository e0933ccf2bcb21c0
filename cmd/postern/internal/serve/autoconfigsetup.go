package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/postern/postern/internal/autoconfig"
	"github.com/postern/postern/proxy/listen"
)

// listenHTTPS is the --listen mode of the autoconfig HTTPS listener. It is
// split off here, before listen.ParseListener sees the SMTP listeners.
const listenHTTPS = "https="

// parseListen parses --listen: the SMTP listeners (the defaults added by
// splitListen) and the https= ADDR ("" if none).
func parseListen(list []string) ([]listen.Listener, string, error) {
	smtpListen, httpsAddr, err := splitListen(list)
	if err != nil {
		return nil, "", err
	}
	var listeners []listen.Listener
	for _, l := range smtpListen {
		pl, err := listen.ParseListener(l)
		if err != nil {
			return nil, "", err
		}
		listeners = append(listeners, pl)
	}
	return listeners, httpsAddr, nil
}

// splitListen separates the https=ADDR entries of --listen from the SMTP
// ones. At most one HTTPS listener; its ADDR may end in @PUBLICPORT
// (listen.SplitPublicPort). A --listen that names no SMTP listener (only
// https= or tls+https=) keeps the SMTP defaults: adding the autoconfig
// listener or the shared port must not silently remove the submission
// ports (issue 23).
func splitListen(list []string) (smtp []string, https string, err error) {
	for _, l := range list {
		if len(l) >= len(listenHTTPS) && strings.EqualFold(l[:len(listenHTTPS)], listenHTTPS) {
			addr := l[len(listenHTTPS):]
			if https != "" {
				return nil, "", errors.New("--listen: only one https= listener")
			}
			bind, _, err := listen.SplitPublicPort(addr)
			if err != nil {
				return nil, "", fmt.Errorf("--listen %q: %w", l, err)
			}
			if _, _, err := net.SplitHostPort(bind); err != nil {
				return nil, "", fmt.Errorf("--listen %q: %w", l, err)
			}
			https = addr
			continue
		}
		smtp = append(smtp, l)
	}
	if !namesSubmissionListener(smtp) {
		smtp = append(DefaultSMTPListen(), smtp...)
	}
	return smtp, https, nil
}

// namesSubmissionListener reports whether list has a starttls= or tls=
// listener, the ones that replace the SMTP defaults; a tls+https= one is
// the last resort beside them (issue 20), not a replacement.
func namesSubmissionListener(list []string) bool {
	for _, l := range list {
		mode, _, _ := strings.Cut(l, "=")
		if m := listen.ListenMode(strings.ToLower(mode)); m == listen.ModeStartTLS || m == listen.ModeTLS {
			return true
		}
	}
	return false
}

// WriteDNSRecords writes the DNS records of cfg's autoconfig domains
// (`dns-records`): only the listeners, the host name and the autoconfig
// settings count; nothing else is built. An error without
// --autoconfig-domain.
func WriteDNSRecords(cfg Config, w io.Writer) error {
	hostname, err := resolveHostname(cfg.Hostname)
	if err != nil {
		return err
	}
	listeners, httpsAddr, err := parseListen(cfg.Listen)
	if err != nil {
		return err
	}
	ac, err := buildAutoconfig(cfg.Autoconfig, hostname, listeners, httpsAddr, nil, nil)
	if err != nil {
		return err
	}
	if ac == nil {
		return errors.New("--autoconfig-domain is required (the mail domains to write records for)")
	}
	return ac.WriteRecords(w)
}

// buildAutoconfig builds the document server from cfg, or returns nil
// without --autoconfig-domain. cert returns the certificate served for a
// name (the Apple profile is signed with it); nil leaves profiles unsigned.
func buildAutoconfig(ac AutoconfigConfig, hostname string, listeners []listen.Listener, httpsAddr string,
	cert func(string) (*tls.Certificate, error), log *slog.Logger) (*autoconfig.Server, error) {
	domains := ac.Domains
	if len(domains) == 0 {
		if httpsAddr != "" {
			return nil, errors.New("--listen https= needs --autoconfig-domain (the documents it serves)")
		}
		return nil, nil
	}
	cfg := autoconfig.Config{
		Domains:      domains,
		Username:     ac.Username,
		MTASTSMode:   ac.MTASTSMode,
		MTASTSMX:     ac.MTASTSMX,
		MTASTSMaxAge: ac.MTASTSMaxAge,
		TLSRPTEmail:  ac.TLSRPTEmail,
		Certificate:  cert,
		Log:          log,
	}
	for _, l := range listeners {
		port, err := publicPort(l.Addr, l.PublicPort)
		if err != nil {
			return nil, fmt.Errorf("--listen %s: %w", l.Addr, err)
		}
		shared := l.Mode == listen.ModeShared
		cfg.Submission = append(cfg.Submission, autoconfig.Endpoint{Host: hostname, Port: port,
			ImplicitTLS: l.Mode == listen.ModeTLS || shared, LastResort: shared})
		if shared && httpsAddr == "" {
			cfg.HTTPSPort = port // it serves the documents too
		}
	}
	if httpsAddr != "" {
		bind, public, err := listen.SplitPublicPort(httpsAddr)
		if err != nil {
			return nil, fmt.Errorf("--listen https=%s: %w", httpsAddr, err)
		}
		port, err := publicPort(bind, public)
		if err != nil {
			return nil, fmt.Errorf("--listen https=%s: %w", httpsAddr, err)
		}
		cfg.HTTPSPort = port
	}
	if imap := ac.IMAP; imap != "" {
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

// publicPort is the port clients are told about: public, or addr's.
func publicPort(addr string, public int) (int, error) {
	if public != 0 {
		return public, nil
	}
	return portOf(addr)
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
