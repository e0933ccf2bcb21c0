package proxy

import (
	"github.com/emersion/go-smtp"

	"github.com/postern/postern/policy"
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
// a client over its anvil limit.
func (s *Server) admit(cc *clientConn) error {
	ip := cc.clientIP()
	trusted := policy.InNetworks(s.cfg.MyNetworks, ip)
	if trusted {
		cc.loggedIn() // mynetworks may relay without AUTH: no login to wait for
	}
	reason := s.limits.Admit(&cc.ticket, ip, trusted)
	if reason == "" {
		return nil
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
