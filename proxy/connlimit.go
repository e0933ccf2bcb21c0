package proxy

import (
	"net/netip"
	"sync"

	"github.com/emersion/go-smtp"

	"github.com/postern/postern/policy"
)

// Why a connection was refused; the values are the metric's reason label.
const (
	refusedGlobal       = "global"        // --max-connections
	refusedPerIP        = "per_ip"        // --max-connections-per-ip
	refusedLoginTimeout = "login_timeout" // --login-timeout
)

// connLimits counts open client connections, in total and per client
// network (an IPv4 address, an IPv6 /64: see policy.ClientNetwork), as Postfix's anvil
// counts smtpd_client_connection_count_limit.
//
// The total counts every connection from Accept on, so connections still in
// a TLS handshake or waiting for their PROXY header are bounded too. The
// per-network count needs the client's address, known only in the
// connection's goroutine (the PROXY header is read there), so it counts
// connections from their admission on. One mutex makes check-and-count
// exact under concurrency; each connection is uncounted once, on close.
//
// A connection whose client is done with it (release: QUIT read, client
// gone) no longer counts as one of its network's sessions: the 221 is
// written after that, and Postern may still be handing the upstream to the
// pool or quitting it, so a client that reads 221 and connects again at
// once is not refused over a connection it has finished with. It still
// holds a socket until it closes, so a network holds at most maxPerNet
// sessions and 2×maxPerNet sockets: a client that stops reading before its
// 221 cannot pile up sockets that count for nothing.
type connLimits struct {
	maxTotal  int // 0: no limit
	maxPerNet int // 0: no limit

	mu     sync.Mutex
	total  int
	perNet map[netip.Prefix]int // sockets admitted and not closed
	done   map[netip.Prefix]int // of those, released (client done)
}

// connTicket is one connection's share of the counts, guarded by
// connLimits.mu.
type connTicket struct {
	key      netip.Prefix
	counted  bool // key is counted in perNet
	released bool // and in done
	closed   bool
}

func newConnLimits(maxTotal, maxPerNet int) *connLimits {
	return &connLimits{maxTotal: maxTotal, maxPerNet: maxPerNet, perNet: make(map[netip.Prefix]int), done: make(map[netip.Prefix]int)}
}

// open counts a connection just accepted.
func (l *connLimits) open() {
	l.mu.Lock()
	l.total++
	l.mu.Unlock()
}

// admit decides whether the connection of t, from client, may be served, and
// counts it against its network if so. It returns "" or the refusal reason.
// exempt clients (mynetworks) are not held to the per-network limit: Postfix
// exempts them too (smtpd_client_event_limit_exceptions = $mynetworks), since
// a trusted host, a webmail say, is one address for many users.
func (l *connLimits) admit(t *connTicket, client netip.Addr, exempt bool) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.closed { // closed meanwhile (shutdown): nothing to count
		return ""
	}
	if l.maxTotal > 0 && l.total > l.maxTotal { // total includes this one
		return refusedGlobal
	}
	if exempt || l.maxPerNet <= 0 {
		return ""
	}
	key := policy.ClientNetwork(client)
	held := l.perNet[key]
	if held-l.done[key] >= l.maxPerNet || held >= 2*l.maxPerNet {
		return refusedPerIP
	}
	l.perNet[key]++
	t.key, t.counted = key, true
	return ""
}

// release marks the connection of t as done with by its client: it no
// longer counts as one of its network's sessions (see connLimits); calls
// after the first do nothing.
func (l *connLimits) release(t *connTicket) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.counted && !t.released {
		t.released = true
		l.done[t.key]++
	}
}

// close uncounts the connection of t; calls after the first do nothing.
func (l *connLimits) close(t *connTicket) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.closed {
		return
	}
	t.closed = true
	l.total--
	if !t.counted {
		return
	}
	if l.perNet[t.key]--; l.perNet[t.key] <= 0 {
		delete(l.perNet, t.key)
	}
	if t.released {
		if l.done[t.key]--; l.done[t.key] <= 0 {
			delete(l.done, t.key)
		}
	}
}

// counts returns the open connections and the client networks counted.
func (l *connLimits) counts() (total, networks int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, len(l.perNet)
}

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
	reason := s.limits.admit(&cc.ticket, ip, trusted)
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
// sessions (see connLimits).
func (b backend) Done(c *smtp.Conn) {
	if cc, err := clientConnOf(c); err == nil {
		b.srv.limits.release(&cc.ticket)
	}
}

var _ smtp.ConnectBackend = backend{}
var _ smtp.DoneBackend = backend{}
