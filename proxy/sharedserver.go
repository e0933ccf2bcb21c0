package proxy

import (
	"errors"
	"net"
	"time"

	"github.com/postern/postern/proxy/listen"
)

// sharedServer is what the shared listener (listen.Shared) takes from s:
// its settings and the hooks that make a connection that chose SMTP one of
// s's client connections.
func (s *Server) sharedServer() listen.SharedServer {
	return listen.SharedServer{
		Hostname:          s.cfg.Hostname,
		TLSConfig:         s.tlsConfig,
		ProxyProtocolFrom: s.cfg.ProxyProtocolFrom,
		Log:               s.log,
		HandshakeFailed:   s.metrics.tlsFailed,
		Adopt:             s.adoptShared,
	}
}

// adoptShared makes a shared-listener connection that chose SMTP a client
// connection of s, counted from now on as the SMTP listeners count theirs
// (the total at once, the client's network at go-smtp's Connect).
func (s *Server) adoptShared(under net.Conn, peer, listener string, accepted time.Time) net.Conn {
	cc := newClientConn(under, peer, listener, s.cfg.CommandTimeout, 0, s.connClosed)
	cc.opened = accepted // --login-timeout counts from accept, handshake included, as on 465
	if login := s.cfg.LoginTimeout; login > 0 {
		cc.loginDeadline.Store(accepted.Add(login).UnixNano())
	}
	cc.tlsStarted.Store(true)
	s.connOpened(cc)
	return cc
}

// HTTPSListener returns the HTTP side of the ModeShared listener: the
// connections that chose HTTP, their TLS handshake done (ALPN h2 or
// http/1.1, or none), for an http.Server's Serve; nil without a ModeShared
// listener. Valid after Listen.
func (s *Server) HTTPSListener() net.Listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shared == nil {
		return nil
	}
	return s.shared.HTTP()
}

// checkShared checks the ModeShared part of cfg: at most one such
// listener, and the budget that counts its connections before they choose.
func checkShared(cfg Config) error {
	n := 0
	for _, l := range cfg.Listeners {
		if l.Mode == listen.ModeShared {
			n++
		}
	}
	switch {
	case n > 1:
		return errors.New("proxy: only one tls+https listener")
	case n == 1 && cfg.Shared.Pending == nil:
		return errors.New("proxy: a tls+https listener needs a budget for its pending connections")
	}
	return nil
}
