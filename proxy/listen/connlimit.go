package listen

import (
	"net/netip"
	"sync"

	"github.com/postern/postern/policy"
)

// Why ConnLimits.Admit or ConnBudget.Admit refused a connection; the values
// are the reason label of postern_connections_refused_total (and of the
// HTTP listeners' refusals).
const (
	RefusedGlobal = "global" // over the total cap (--max-connections)
	RefusedPerIP  = "per_ip" // over the per-network cap (--max-connections-per-ip)
	// RefusedFlood: refused as above, while its network already holds
	// MaxRefusedOpenPerNet refused connections waiting for their client;
	// it is closed at once, with no TLS handshake and no reply (see
	// ConnLimits.HoldRefused).
	RefusedFlood = "flood"
)

// ConnLimits counts open client connections, in total and per client
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
//
// A refused connection is still open until its 421 is written: on an
// implicit-TLS listener that waits for a handshake the client drives (for
// up to proxy.RefusedConnectionTimeout), and meanwhile it holds one of the
// total's slots. So such refused connections are counted against their
// network too (HoldRefused), and once a network holds
// MaxRefusedOpenPerNet of them, the next is closed at once (RefusedFlood):
// one address flooding past its cap holds at most 2×maxPerNet +
// MaxRefusedOpenPerNet sockets, and cannot fill the total with refused
// ones.
//
// A connection is counted with Open at accept, Admit once its client is
// known, Release when its client is done with it and Close at its close,
// each time with its own Ticket. Safe for concurrent use.
type ConnLimits struct {
	maxTotal  int // 0: no limit
	maxPerNet int // 0: no limit

	mu     sync.Mutex
	total  int
	perNet map[netip.Prefix]int // sockets admitted and not closed
	done   map[netip.Prefix]int // of those, released (client done)
	// refused counts the refused sockets held open (HoldRefused) and
	// not closed, per network.
	refused map[netip.Prefix]int
}

// Ticket is one connection's share of the counts, guarded by
// ConnLimits.mu; its zero value is a connection not counted yet.
type Ticket struct {
	key      netip.Prefix
	counted  bool // key is counted in perNet
	released bool // and in done
	refused  bool // key is counted in refused
	closed   bool
}

// NewConnLimits returns limits of maxTotal connections, maxPerNet of them
// from one client network; 0 is no limit.
func NewConnLimits(maxTotal, maxPerNet int) *ConnLimits {
	return &ConnLimits{maxTotal: maxTotal, maxPerNet: maxPerNet, perNet: make(map[netip.Prefix]int),
		done: make(map[netip.Prefix]int), refused: make(map[netip.Prefix]int)}
}

// Open counts a connection just accepted.
func (l *ConnLimits) Open() {
	l.mu.Lock()
	l.total++
	l.mu.Unlock()
}

// Admit decides whether the connection of t, from client, may be served, and
// counts it against its network if so. It returns "" or the refusal reason.
// exempt clients (mynetworks) are not held to the per-network limit: Postfix
// exempts them too (smtpd_client_event_limit_exceptions = $mynetworks), since
// a trusted host, a webmail say, is one address for many users.
func (l *ConnLimits) Admit(t *Ticket, client netip.Addr, exempt bool) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.closed { // closed meanwhile (shutdown): nothing to count
		return ""
	}
	if l.maxTotal > 0 && l.total > l.maxTotal { // total includes this one
		return RefusedGlobal
	}
	if exempt || l.maxPerNet <= 0 {
		return ""
	}
	key := policy.ClientNetwork(client)
	held := l.perNet[key]
	if held-l.done[key] >= l.maxPerNet || held >= 2*l.maxPerNet {
		return RefusedPerIP
	}
	l.perNet[key]++
	t.key, t.counted = key, true
	return ""
}

// HoldRefused counts the connection of t, from client, refused by Admit,
// as one its network holds open while its refusal waits for the client (an
// implicit-TLS handshake), until Close. It reports false, counting
// nothing, when the network holds MaxRefusedOpenPerNet such connections
// already: the caller then closes it at once, without a reply (reason
// RefusedFlood). A refusal that waits for nothing (a 421 in plain text,
// or after a handshake already done) is over at once and needs no call.
func (l *ConnLimits) HoldRefused(t *Ticket, client netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.closed || t.counted || t.refused { // nothing (more) to hold
		return true
	}
	key := policy.ClientNetwork(client)
	if l.refused[key] >= MaxRefusedOpenPerNet {
		return false
	}
	l.refused[key]++
	t.key, t.refused = key, true
	return true
}

// Release marks the connection of t as done with by its client: it no
// longer counts as one of its network's sessions (see ConnLimits); calls
// after the first do nothing.
func (l *ConnLimits) Release(t *Ticket) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.counted && !t.released {
		t.released = true
		l.done[t.key]++
	}
}

// Close uncounts the connection of t; calls after the first do nothing.
func (l *ConnLimits) Close(t *Ticket) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.closed {
		return
	}
	t.closed = true
	l.total--
	if t.refused {
		if l.refused[t.key]--; l.refused[t.key] <= 0 {
			delete(l.refused, t.key)
		}
	}
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

// Counts returns the open connections and the client networks counted.
func (l *ConnLimits) Counts() (total, networks int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, len(l.perNet)
}
