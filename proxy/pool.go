package proxy

import (
	"sync"
	"time"
)

// upstreamPool keeps a few idle upstream connections between client
// sessions, so a client that connects, sends one message and leaves (the
// common case for phones and for the W2 benchmark) does not pay a TCP
// connect, a greeting and EHLO at the upstream each time. Connections bound
// to one user (XCLIENT) are never pooled.
type upstreamPool struct {
	mu      sync.Mutex
	idle    []pooledUpstream
	max     int
	maxIdle time.Duration
	now     func() time.Time
}

type pooledUpstream struct {
	up    *upstream
	since time.Time
}

func newUpstreamPool(max int, maxIdle time.Duration) *upstreamPool {
	return &upstreamPool{max: max, maxIdle: maxIdle, now: time.Now}
}

// get returns an idle connection, or nil. Connections idle for longer than
// maxIdle are closed rather than returned: the upstream may have timed them
// out already (Postfix's smtpd_timeout), and a failed reuse costs a retry.
func (p *upstreamPool) get() *upstream {
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
		go last.up.quit()
	}
	return nil
}

// put offers a connection with no open transaction back to the pool; it
// returns false (and the caller closes it) when the pool is full.
func (p *upstreamPool) put(up *upstream) bool {
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

// close quits every idle connection (shutdown).
func (p *upstreamPool) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.up.quit()
	}
}
