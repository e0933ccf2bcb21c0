package upstream

import (
	"sync"
	"time"
)

// Pool keeps a few idle upstream connections between client
// sessions, so a client that connects, sends one message and leaves (the
// common case for phones and for the W2 benchmark) does not pay a TCP
// connect, a greeting and EHLO at the upstream each time. Connections bound
// to one user (XCLIENT) are never pooled.
type Pool struct {
	mu      sync.Mutex
	idle    []pooledUpstream
	max     int
	maxIdle time.Duration
	now     func() time.Time
}

type pooledUpstream struct {
	up    *Conn
	since time.Time
}

// NewPool keeps up to max idle connections, each for at most maxIdle.
func NewPool(max int, maxIdle time.Duration) *Pool {
	return &Pool{max: max, maxIdle: maxIdle, now: time.Now}
}

// Get returns an idle connection, or nil. Connections idle for longer than
// maxIdle are closed rather than returned: the upstream may have timed them
// out already (Postfix's smtpd_timeout), and a failed reuse costs a retry.
func (p *Pool) Get() *Conn {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.idle) > 0 {
		last := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if p.now().Sub(last.since) <= p.maxIdle {
			return last.up
		}
		go last.up.Quit()
	}
	return nil
}

// Put offers a connection with no open transaction back to the pool; it
// returns false (and the caller closes it) when the pool is full.
func (p *Pool) Put(up *Conn) bool {
	if p == nil || !up.idle() {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) >= p.max {
		return false
	}
	p.idle = append(p.idle, pooledUpstream{up: up, since: p.now()})
	return true
}

// Close quits every idle connection (shutdown).
func (p *Pool) Close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.up.Quit()
	}
}
