package serve

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern/postern/proxy/listen"
)

// The HTTP listeners, as the metrics' listener label names them (and
// httpListenerShared, in shared443.go).
const (
	httpListenerHTTPS   = "https"     // --listen https=
	httpListenerACME    = "acme-http" // --acme-http (HTTP-01, and the documents)
	httpListenerMetrics = "metrics"   // --metrics
)

// httpCaps holds the connection budgets of the HTTP listeners, apart from
// the SMTP listeners' (--max-connections): the public ones (https= and
// the ACME HTTP-01 listener) share --max-http-connections and
// --max-http-connections-per-ip; --metrics has listen.MetricsMaxConnections
// (listen.MetricsMaxConnectionsPerIP per address) of its own, so a flood of
// the public ones, or one client of its own, cannot fail the probes.
type httpCaps struct {
	public  *listen.ConnBudget
	metrics *listen.ConnBudget
	refused *prometheus.CounterVec // listener, reason
	open    prometheus.GaugeFunc

	mu         sync.Mutex // guards the two below
	lastLogged time.Time
	unlogged   int // refusals since the last line
	log        *slog.Logger
}

func newHTTPCaps(maxTotal, maxPerIP int, log *slog.Logger) *httpCaps {
	h := &httpCaps{
		public:  listen.NewConnBudget(maxTotal, maxPerIP),
		metrics: listen.NewConnBudget(listen.MetricsMaxConnections, listen.MetricsMaxConnectionsPerIP),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_http_connections_refused_total",
			Help: "HTTP connections closed at accept by a cap, by listener (https, acme-http, tls+https: before it chose SMTP or HTTP, metrics) and reason: global (--max-http-connections; for metrics its own fixed cap), per_ip (--max-http-connections-per-ip; for metrics its own fixed cap).",
		}, []string{"listener", "reason"}),
		log: log,
	}
	h.open = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "postern_http_connections",
		Help: "Open connections of the https= and --acme-http listeners, and those of tls+https= until they choose SMTP and the HTTP ones after (counted against --max-http-connections).",
	}, func() float64 { return float64(h.public.Open()) })
	for _, l := range []string{httpListenerHTTPS, httpListenerACME, httpListenerShared} {
		h.refused.WithLabelValues(l, listen.RefusedGlobal) // exported at 0 from the start
		h.refused.WithLabelValues(l, listen.RefusedPerIP)
	}
	h.refused.WithLabelValues(httpListenerMetrics, listen.RefusedGlobal)
	h.refused.WithLabelValues(httpListenerMetrics, listen.RefusedPerIP)
	return h
}

// collectors are the metrics to register.
func (h *httpCaps) collectors() []prometheus.Collector {
	return []prometheus.Collector{h.refused, h.open}
}

// wrap caps ln with the budget of the listener called name.
func (h *httpCaps) wrap(ln net.Listener, name string) net.Listener {
	b := h.public
	if name == httpListenerMetrics {
		b = h.metrics
	}
	return &cappedListener{Listener: ln, budget: b, name: name, caps: h}
}

// refuse counts a refusal, and logs it unless a line was logged within
// httpRefusalLogPeriod: a flood must not turn into as many log lines.
func (h *httpCaps) refuse(listener, reason string, client netip.Addr) {
	h.refused.WithLabelValues(listener, reason).Inc()
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	if now.Sub(h.lastLogged) < httpRefusalLogPeriod {
		h.unlogged++
		return
	}
	h.log.Warn("HTTP connection refused", "listener", listener, "client", client.String(), "reason", reason,
		"refused_unlogged", h.unlogged)
	h.lastLogged, h.unlogged = now, 0
}

// cappedListener closes, at accept, every connection over its budget,
// before anything is read from it or allocated for it: no TLS handshake, no
// HTTP buffers, no goroutine. The descriptor is held only for the close.
type cappedListener struct {
	net.Listener
	budget *listen.ConnBudget
	name   string
	caps   *httpCaps
}

func (l *cappedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		client := remoteIP(c)
		release, reason := l.budget.Admit(client)
		if reason == "" {
			return &budgetConn{Conn: c, release: release}, nil
		}
		_ = c.Close()
		l.caps.refuse(l.name, reason, client)
	}
}

// remoteIP is the peer's address; the zero Addr (one network for all) if
// it is not an IP, which a TCP listener never gives.
func remoteIP(c net.Conn) netip.Addr {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// budgetConn gives its slot back when it is closed.
type budgetConn struct {
	net.Conn
	release func() // idempotent
}

func (c *budgetConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// CloseWrite passes net/http's half-close (after an error reply it closes
// the write side and drains the client) on to a TCP connection.
func (c *budgetConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
