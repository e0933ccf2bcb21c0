package proxy

import (
	"github.com/emersion/go-smtp"

	"github.com/postern/postern/policy"
	"github.com/postern/postern/proxy/listen"
)

// refusedLoginTimeout is the reason label of a connection the login
// timeout closed (--login-timeout), beside listen.RefusedGlobal and
// listen.RefusedPerIP in postern_connections_refused_total.
const refusedLoginTimeout = "login_timeout"

// admit is go-smtp's Connect hook (see backend.Connect): it runs in the
// connection's goroutine before the greeting, so the client address may
// come from a PROXY header. A refused client gets replyTooManyConnections
// instead of the 220 greeting, then the connection is closed: 421 is the
// "service not available, closing transmission channel" reply (RFC 5321
// §4.2.3, §3.8), temporary, so the client retries later, as Postfix answers
// a client over its anvil limit. handshakeFirst says the 421 must wait for
// a TLS handshake the client drives (implicit TLS): past
// listen.MaxRefusedOpenPerNet such refusals open from its network, the
// connection is closed at once instead (listen.RefusedFlood).
func (s *Server) admit(cc *clientConn, handshakeFirst bool) error {
	ip := cc.clientIP()
	trusted := policy.InNetworks(s.cfg.MyNetworks, ip)
	if trusted {
		cc.loggedIn() // mynetworks may relay without AUTH: no login to wait for
	}
	reason := s.limits.Admit(&cc.ticket, ip, trusted)
	if reason == "" {
		return nil
	}
	if handshakeFirst && !trusted && !s.limits.HoldRefused(&cc.ticket, ip) {
		// No handshake, no 421, and its slot is free at once (closed
		// before it is counted, so a scrape that sees the refusal sees
		// it closed). go-smtp's handshake then fails on the closed
		// connection (logged at debug, see slogPrintf).
		cc.Close()
		s.metrics.connRefused(listen.RefusedFlood)
		s.log.Debug("connection refused", "session", cc.id, "client", ip.String(), "reason", listen.RefusedFlood)
		return replyTooManyConnections
	}
	s.metrics.connRefused(reason)
	s.log.Warn("connection refused", "session", cc.id, "client", ip.String(), "reason", reason)
	return replyTooManyConnections
}

// Done is go-smtp's DoneBackend hook: the client is done with the
// connection (QUIT read, before its 221 is written, or the connection is
// ending otherwise), so it no longer counts as one of its network's
// sessions (see listen.ConnLimits).
func (b backend) Done(c *smtp.Conn) {
	if cc, err := clientConnOf(c); err == nil {
		b.srv.limits.Release(&cc.ticket)
	}
}

var _ smtp.ConnectBackend = backend{}
var _ smtp.DoneBackend = backend{}
