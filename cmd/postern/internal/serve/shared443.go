package serve

// The shared listener, --listen tls+https=ADDR (issue 20): submission over
// implicit TLS and the HTTPS documents on one port, told apart by ALPN,
// then by the TLS server name, then by who speaks first (proxy/shared.go).
// This file wires it: its settings, its HTTP side, and its budget.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"

	"github.com/postern/postern/proxy/listen"
)

// httpListenerShared is the metrics' listener label of the shared
// listener's connections in the HTTP budget (before they chose, and the
// HTTP ones after).
const httpListenerShared = "tls+https"

// sharedConfig is proxy.Config.Shared from cfg: connections count in the
// public HTTP budget (--max-http-connections) until they choose SMTP.
func sharedConfig(cfg SharedConfig, caps *httpCaps) (listen.SharedConfig, error) {
	if cfg.FirstBytesWait <= 0 {
		return listen.SharedConfig{}, errors.New("--shared-first-bytes-wait must be positive")
	}
	return listen.SharedConfig{
		SMTPNames:      cfg.SMTPNames,
		FirstBytesWait: cfg.FirstBytesWait,
		Pending:        caps.public,
		Refused: func(reason string, client netip.Addr) {
			caps.refuse(httpListenerShared, reason, client)
		},
	}, nil
}

// serveSharedHTTP serves the HTTP side of the shared listener (its
// connections arrive with their TLS handshake done) until ctx ends: the
// documents, or 404 without --autoconfig-domain.
func serveSharedHTTP(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	if h == nil {
		h = http.NotFoundHandler()
	}
	// TLSConfig stays nil: net/http then serves HTTP/2 on the connections
	// that negotiated h2.
	srv := newHTTPServer(h, log)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("tls+https listener, HTTP side: %w", err)
	}
	return nil
}
