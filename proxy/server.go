// Package proxy is Postern's SMTP side towards the client: the SMTP server
// over the sockets proxy/listen binds and shares, the client connection
// (PROXY protocol, deadlines, login timeout), the SMTP connection caps'
// 421, SASL PLAIN and LOGIN, one session per client connection applying the
// submission policy verb by verb and streaming each accepted message
// through proxy/upstream to the internal MTA, every reply Postern writes
// (replies.go), and the Prometheus metrics.
//
// A session reaches the lockout and the sending limits through the small
// interfaces of decisions.go, declared here at the consumer, and policy
// through its plain functions; the shared listener hands it connections
// through listen.SharedServer. It must never import cmd or certs; policy,
// limits, proxy/listen and proxy/upstream must never import it.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/policy"
	"github.com/postern/postern/proxy/listen"
	"github.com/postern/postern/proxy/upstream"
)

// maxCommandLine is the longest command line go-smtp reads, CRLF included:
// twice RFC 5321 §4.5.3.1.4's 512, as go-smtp's default. Message lines are
// bounded only by the message size (go-smtp patch server-long-lines, upstream.Copier).
const maxCommandLine = 2000

// Config is everything a Server needs; cmd/postern builds it from flags.
type Config struct {
	Hostname  string
	Listeners []listen.Listener
	TLSConfig *tls.Config
	// Upstream is how every upstream is reached (TLS, AUTH, XCLIENT,
	// timeouts); its Addr is the upstream when UpstreamAddrs is empty.
	Upstream upstream.Config
	// UpstreamAddrs are the upstreams (every --upstream), in order: a
	// transaction goes to the first healthy one and fails over to the
	// next before any byte of the message is sent (session.openUpstream).
	UpstreamAddrs []string
	// UpstreamHoldDown is how long a failing upstream is skipped
	// (0: upstream.DefaultHoldDown).
	UpstreamHoldDown time.Duration
	Auth             auth.Authenticator
	// Limiter counts AUTH failures across connections (lockout); optional.
	Limiter AuthLimiter
	// Metrics, if set, receives the counters (see NewMetrics).
	Metrics *Metrics
	// ProxyProtocolFrom lists the load balancers whose PROXY protocol
	// header is honoured; the address it carries is then the client's for
	// mynetworks, lockout and logs.
	ProxyProtocolFrom []netip.Prefix
	MyNetworks        []netip.Prefix
	Received          policy.ReceivedMode
	MaxMessageBytes   int64
	MaxRecipients     int
	// MaxAuthFailures per connection before it is closed with 421.
	MaxAuthFailures int
	// UpstreamPool is how many idle upstream connections are kept for the
	// next client session (0: none). Not used with XCLIENT, whose
	// connections belong to one user.
	UpstreamPool   int
	CommandTimeout time.Duration // idle time allowed between reads
	DataTimeout    time.Duration // whole DATA phase of one message
	AuthTimeout    time.Duration // one backend verification
	Log            *slog.Logger

	// MaxConnections caps open client connections, MaxConnectionsPerIP
	// those of one client address (IPv6: /64; mynetworks exempt); more get
	// 421 instead of the greeting. 0: no limit.
	MaxConnections      int
	MaxConnectionsPerIP int
	// LoginTimeout is the time from Accept to a successful AUTH (TLS
	// handshake included) after which a connection gets 421 and is closed;
	// mynetworks clients are exempt. 0: none.
	LoginTimeout time.Duration

	// Limits, if set, applies the per-login sending limits and
	// suspensions (issue 12): limits.Limits.
	Limits SendingLimits
	// HeaderFrom is --check-header-from (zero value: off).
	HeaderFrom policy.HeaderFromMode
	// Shared configures the listen.ModeShared listener, if any.
	Shared listen.SharedConfig
}

// Server runs the listeners of one Postern instance.
type Server struct {
	cfg Config
	log *slog.Logger
	// What sessions consult besides plain settings, taken from Config by
	// New: the lockout and the sending limits only through the interfaces
	// of decisions.go (nil: none).
	auth      auth.Authenticator
	lockout   AuthLimiter
	sending   SendingLimits
	metrics   *Metrics // nil: nothing counted (its methods check)
	senderMap atomic.Pointer[policy.SenderMap]
	smtp      *smtp.Server
	tlsConfig *tls.Config
	upstreams upstream.Targets   // in the order of configuration, each with its pool
	limits    *listen.ConnLimits // the SMTP listeners' connection caps

	mu        sync.Mutex
	listeners []net.Listener
	shared    *listen.Shared // the ModeShared listener, nil without
	conns     map[*clientConn]struct{}
	connGone  chan struct{} // closed and replaced whenever a connection closes
	active    atomic.Int64
	stopping  atomic.Bool // Serve's context has ended
	// stopped ends when shutdown starts (cause errServerStopping): what a
	// session waits on outside go-smtp's reads (AUTH's login delay) ends
	// with it, instead of holding the drain up.
	stopped     context.Context
	stopServing context.CancelCauseFunc
}

// errServerStopping is the cause of Server.stopped.
var errServerStopping = errors.New("server shutting down")

// New checks cfg and builds a Server. Nothing is bound until Listen.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Hostname == "":
		return nil, errors.New("proxy: hostname is required")
	case cfg.TLSConfig == nil:
		return nil, errors.New("proxy: a TLS configuration is required")
	case cfg.Upstream.Addr == "" && len(cfg.UpstreamAddrs) == 0:
		return nil, errors.New("proxy: upstream address is required")
	case cfg.Auth == nil:
		return nil, errors.New("proxy: an authenticator is required")
	case len(cfg.Listeners) == 0:
		return nil, errors.New("proxy: no listeners")
	}
	if err := checkShared(cfg); err != nil {
		return nil, err
	}
	if cfg.Received == "" {
		cfg.Received = policy.DefaultReceivedMode
	}
	if cfg.MaxAuthFailures <= 0 {
		cfg.MaxAuthFailures = DefaultMaxAuthFailures
	}
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = DefaultAuthTimeout
	}
	if cfg.Upstream.HeloName == "" {
		cfg.Upstream.HeloName = cfg.Hostname
	}
	if cfg.Upstream.DialTimeout <= 0 {
		cfg.Upstream.DialTimeout = upstream.DefaultDialTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: cfg.Log, auth: cfg.Auth, lockout: cfg.Limiter, sending: cfg.Limits, metrics: cfg.Metrics,
		conns: make(map[*clientConn]struct{}), connGone: make(chan struct{}),
		limits: listen.NewConnLimits(cfg.MaxConnections, cfg.MaxConnectionsPerIP)}
	s.stopped, s.stopServing = context.WithCancelCause(context.Background())
	s.senderMap.Store(nil)
	s.tlsConfig = s.markHandshakes(cfg.TLSConfig)
	s.upstreams = newTargets(cfg)

	srv := smtp.NewServer(backend{s})
	srv.Domain = cfg.Hostname
	srv.TLSConfig = s.tlsConfig
	srv.MaxMessageBytes = cfg.MaxMessageBytes
	srv.MaxRecipients = cfg.MaxRecipients
	srv.MaxLineLength = maxCommandLine
	srv.MaxLineSkip = MaxCommandLineSkip
	// Reads renew their own idle deadline (clientConn), so the skip of a
	// line too long has its own bound: a client dribbling it on is cut.
	srv.LineSkipTimeout = cfg.CommandTimeout
	srv.WriteTimeout = cfg.CommandTimeout
	srv.ReadTimeout = 0 // clientConn renews read deadlines itself
	srv.EnableSMTPUTF8 = true
	srv.EnableDSN = true
	// AUTH is refused before STARTTLS by the session (Auth answers 530,
	// AuthMechanisms advertises nothing without TLS), with Postfix's
	// smtpd_tls_auth_only reply instead of go-smtp's 523 (RFC 3207 §4).
	srv.AllowInsecureAuth = true
	srv.ErrorLog = slogPrintf{cfg.Log}
	s.smtp = srv
	return s, nil
}

// SetSenderMap installs a new sender map (nil: a login may send only as
// itself). Safe while serving; new MAIL commands see the new map.
func (s *Server) SetSenderMap(m *policy.SenderMap) { s.senderMap.Store(m) }

// Listen binds every configured listener. Call it before Serve; Addrs then
// reports the bound addresses (useful with port 0).
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, lc := range s.cfg.Listeners {
		l, err := net.Listen("tcp", lc.Addr)
		if err != nil {
			for _, open := range s.listeners {
				open.Close()
			}
			s.listeners = nil
			return fmt.Errorf("listening on %s (%s): %w", lc.Addr, lc.Mode, err)
		}
		if lc.Mode == listen.ModeShared {
			s.shared = listen.NewShared(l, s.cfg.Shared, s.sharedServer())
			s.listeners = append(s.listeners, s.shared.SMTP())
			continue
		}
		name := listen.Name(lc.Mode, l.Addr())
		var wrapped net.Listener = &clientListener{
			Listener: l, name: name, idle: s.cfg.CommandTimeout, proxyFrom: s.cfg.ProxyProtocolFrom,
			onAccept: s.connOpened, onClose: s.connClosed, login: s.cfg.LoginTimeout,
		}
		if lc.Mode == listen.ModeTLS {
			// Only implicit TLS has ALPN to check: a STARTTLS client
			// has already spoken SMTP before its handshake.
			wrapped = tls.NewListener(wrapped, listen.StrictALPN(s.tlsConfig, listen.ALPNSMTP))
		}
		s.listeners = append(s.listeners, wrapped)
	}
	return nil
}

// Addrs returns the bound listener addresses, in configuration order.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]net.Addr, len(s.listeners))
	for i, l := range s.listeners {
		out[i] = l.Addr()
	}
	return out
}

// ActiveSessions is the number of open client connections.
func (s *Server) ActiveSessions() int64 { return s.active.Load() }

// Serve accepts connections until ctx is cancelled, then stops accepting and
// gives open sessions up to drain to finish before closing them.
//
// The shutdown is go-smtp's (patch shutdown-421): a session with no message in
// flight is ended with replyShuttingDown (421 4.3.2, RFC 5321 §3.8) by its
// own goroutine, at once if it waits for a command; a session in a mail
// transaction finishes it first (the client hears the upstream's reply to
// its DATA before the 421, never a 421 in place of a 250 it was owed). When
// drain ends, go-smtp ends the rest the same way, a DATA in progress
// included (it never reaches the upstream's final dot), and they get
// lastReplyTimeout to say so before they are cut.
func (s *Server) Serve(ctx context.Context, drain time.Duration) error {
	s.mu.Lock()
	listeners := append([]net.Listener(nil), s.listeners...)
	shared := s.shared
	s.mu.Unlock()
	if len(listeners) == 0 {
		return errors.New("proxy: Serve called before Listen")
	}
	errc := make(chan error, len(listeners)+1)
	for _, l := range listeners {
		go func() { errc <- s.smtp.Serve(l) }()
	}
	if shared != nil {
		go func() {
			if err := shared.Run(s.stopped); err != nil {
				errc <- fmt.Errorf("%s: %w", shared.Name(), err)
			}
		}()
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		s.stopServing(errServerStopping)
		s.smtp.Close()
		return fmt.Errorf("serving SMTP: %w", err)
	}
	s.stopping.Store(true)
	s.stopServing(errServerStopping)
	s.log.Info("shutting down", "active_sessions", s.active.Load(), "drain", drain.String())
	// Stop accepting. The listeners are closed here as well as by go-smtp's
	// Shutdown: a Serve goroutine that has not registered its listener with
	// go-smtp yet would otherwise accept forever.
	for _, l := range listeners {
		l.Close()
	}
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := s.smtp.Shutdown(sctx); errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn("drain timeout: ending remaining sessions", "active_sessions", s.active.Load())
		s.waitSessions(lastReplyTimeout)
	}
	// Sessions still open now (a client that does not read its 421, an
	// upstream that does not answer) are cut. None of them has been told
	// 250 for a message the upstream did not accept: an interrupted DATA
	// never reaches the final dot upstream.
	s.closeAll()
	s.upstreams.ClosePools()
	return nil
}

// waitSessions waits until every client connection is closed, for at most d.
func (s *Server) waitSessions(d time.Duration) {
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	for {
		s.mu.Lock()
		open, gone := len(s.conns), s.connGone
		s.mu.Unlock()
		if open == 0 {
			return
		}
		select {
		case <-gone:
		case <-timeout.C:
			return
		}
	}
}

func (s *Server) closeAll() {
	s.mu.Lock()
	conns := make([]*clientConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

func (s *Server) connOpened(cc *clientConn) {
	s.mu.Lock()
	s.conns[cc] = struct{}{}
	s.mu.Unlock()
	s.active.Add(1)
	s.limits.Open()
	s.metrics.connection(cc.listener)
	s.log.Info("connect", "session", cc.id, "listener", cc.listener, "peer", cc.peer)
}

func (s *Server) connClosed(cc *clientConn) {
	s.mu.Lock()
	delete(s.conns, cc)
	close(s.connGone)
	s.connGone = make(chan struct{})
	s.mu.Unlock()
	s.active.Add(-1)
	s.limits.Close(&cc.ticket)
	if cc.tlsStarted.Load() && !cc.tlsLogged.Load() {
		s.metrics.tlsFailed(cc.listener)
	}
	if cc.loginExpired.Load() {
		s.metrics.connRefused(refusedLoginTimeout)
		s.log.Warn("login timeout", "session", cc.id, "client", cc.clientIP().String())
	}
	s.log.Info("disconnect", "session", cc.id, "client", cc.client().String(),
		"messages", cc.messages.Load(), "auth_failures", cc.authFailures.Load(),
		"duration", time.Since(cc.opened).Round(time.Millisecond).String())
}

// slogPrintf adapts go-smtp's Printf-style error log to slog.
type slogPrintf struct{ log *slog.Logger }

func (l slogPrintf) Printf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	// A client (or health probe) hung up, or Postern closed the
	// connection itself (a flood's refusal, see Server.admit).
	if strings.HasSuffix(msg, ": EOF") || strings.HasSuffix(msg, net.ErrClosed.Error()) {
		l.log.Debug("smtp", "detail", msg)
		return
	}
	l.log.Warn("smtp", "detail", msg)
}

func (l slogPrintf) Println(v ...any) { l.log.Warn("smtp", "detail", fmt.Sprint(v...)) }

// markHandshakes returns a copy of the TLS configuration that records on
// each connection that a ClientHello arrived, so a handshake that never
// leads to a TLS session can be counted as a failure.
func (s *Server) markHandshakes(base *tls.Config) *tls.Config {
	conf := base.Clone()
	next := base.GetConfigForClient
	conf.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if cc, ok := hello.Conn.(*clientConn); ok {
			cc.tlsStarted.Store(true)
		}
		if next != nil {
			return next(hello)
		}
		return nil, nil
	}
	return conf
}

// newTargets builds one upstream.Target per configured address, each with
// its own pool (none with XCLIENT, whose connections belong to one user).
func newTargets(cfg Config) upstream.Targets {
	addrs := cfg.UpstreamAddrs
	if len(addrs) == 0 {
		addrs = []string{cfg.Upstream.Addr}
	}
	targets := make(upstream.Targets, 0, len(addrs))
	for _, a := range addrs {
		uc := cfg.Upstream
		uc.Addr = a
		var pool *upstream.Pool
		if cfg.UpstreamPool > 0 && !cfg.Upstream.XCLIENT {
			pool = upstream.NewPool(cfg.UpstreamPool, upstream.PoolMaxIdle)
		}
		targets = append(targets, upstream.NewTarget(uc, pool, cfg.UpstreamHoldDown))
	}
	return targets
}

// perUpstream is where the per-upstream series are counted: nowhere with
// a single upstream, whose series would repeat the totals (and whose
// metrics stay as they were before there could be several).
func (s *Server) perUpstream() *Metrics {
	if len(s.upstreams) < 2 {
		return nil
	}
	return s.metrics
}
