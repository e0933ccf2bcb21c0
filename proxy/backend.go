package proxy

import (
	"crypto/tls"
	"fmt"
	"log/slog"

	"github.com/emersion/go-smtp"

	"github.com/postern/postern/proxy/listen"
)

// backend builds a session when go-smtp sees EHLO/HELO, and again after
// STARTTLS (go-smtp drops the old session at the upgrade, so nothing said in
// plain text survives it).
type backend struct{ srv *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	cc, err := clientConnOf(c)
	if err != nil {
		return nil, err
	}
	s := &session{srv: b.srv, conn: c, cc: cc}
	s.log = b.srv.log.With("session", cc.id)
	if state, ok := c.TLSConnectionState(); ok {
		s.tls = &state
		if cc.tlsLogged.CompareAndSwap(false, true) {
			b.srv.metrics.tlsDone(tls.VersionName(state.Version))
			s.log.Info("tls", "client", cc.clientIP().String(), "version", tls.VersionName(state.Version),
				"cipher", tls.CipherSuiteName(state.CipherSuite), "sni", state.ServerName)
		}
	}
	return s, nil
}

// Connect runs once per connection before the greeting (go-smtp's
// ConnectBackend): the connection limits (see Server.admit). A refused
// connection is over: what is left of it (on an implicit-TLS listener the
// handshake, then the 421) gets RefusedConnectionTimeout, not the login
// timeout (see clientConn.endWithin), and a flood of them is cut short
// (see Server.admit).
func (b backend) Connect(c *smtp.Conn) error {
	cc, err := clientConnOf(c)
	if err != nil {
		return err
	}
	// Connect runs before an implicit-TLS listener's handshake: a
	// shared-listener connection (tls+https) has done its own already.
	tc, isTLS := c.Conn().(*tls.Conn)
	handshakeFirst := isTLS && !tc.ConnectionState().HandshakeComplete
	if err := b.srv.admit(cc, handshakeFirst); err != nil {
		cc.endWithin(RefusedConnectionTimeout)
		return err
	}
	return nil
}

// clientConnOf finds the clientConn under c (below TLS if there is one).
func clientConnOf(c *smtp.Conn) (*clientConn, error) {
	nc := c.Conn()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	nc = listen.Unwrap(nc) // below the shared listener's (tls+https), if any
	cc, ok := nc.(*clientConn)
	if !ok {
		return nil, fmt.Errorf("proxy: unexpected connection type %T", nc)
	}
	return cc, nil
}

var _ smtp.Backend = backend{}
var _ smtp.AuthSession = (*session)(nil)

func logAttrsTLS(s *tls.ConnectionState) slog.Attr {
	if s == nil {
		return slog.String("tls", "none")
	}
	return slog.String("tls", tls.VersionName(s.Version))
}
