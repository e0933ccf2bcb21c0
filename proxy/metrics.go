package proxy

import (
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern/postern/limits"
	"github.com/postern/postern/proxy/listen"
	"github.com/postern/postern/proxy/upstream"
)

// Metrics are the Prometheus collectors of one Server. Labels are bounded by
// construction: listener names come from the configuration, results and
// classes from fixed sets; never a login or an address.
type Metrics struct {
	connections     *prometheus.CounterVec   // listener
	tlsHandshakes   *prometheus.CounterVec   // version
	tlsFailures     *prometheus.CounterVec   // listener
	refused         *prometheus.CounterVec   // reason
	auth            *prometheus.CounterVec   // backend, result
	lockouts        prometheus.Counter       //
	messages        *prometheus.CounterVec   // result
	bytesForwarded  prometheus.Counter       //
	upstreamReplies *prometheus.CounterVec   // stage, class
	upstreamLatency *prometheus.HistogramVec // stage
	// Per upstream, labelled with the address as configured (--upstream:
	// a bounded set from the configuration).
	upstreamFailures *prometheus.CounterVec // upstream, stage
	upstreamMessages *prometheus.CounterVec // upstream, result
	limitsReached    *prometheus.CounterVec // limit
	suspensions      *prometheus.CounterVec // limit
	alerts           *prometheus.CounterVec // result
}

// NewMetrics creates the collectors and registers them with reg. The
// active-sessions gauge reads the Server itself: register
// NewActiveSessionsGauge once proxy.New has returned it.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_connections_total", Help: "Client connections accepted, by listener.",
		}, []string{"listener"}),
		tlsHandshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_tls_handshakes_total", Help: "Completed client TLS handshakes, by TLS version.",
		}, []string{"version"}),
		tlsFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_tls_handshake_failures_total", Help: "Client TLS handshakes that started and did not complete, by listener.",
		}, []string{"listener"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_connections_refused_total", Help: fmt.Sprintf("Client connections closed with 421 by a limit: global (--max-connections), per_ip (--max-connections-per-ip), login_timeout (--login-timeout); flood: refused by either cap on an implicit-TLS listener while its address (IPv6: /64) held %d refused connections waiting for their handshake, closed without a reply.", listen.MaxRefusedOpenPerNet),
		}, []string{"reason"}),
		auth: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_auth_total", Help: "AUTH attempts by backend (the one that accepted, or \"none\") and result (ok, invalid, unavailable, locked_out, suspended: the right password of a suspended login).",
		}, []string{"backend", "result"}),
		lockouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "postern_lockouts_total", Help: "AUTH attempts refused because the client address is locked out.",
		}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_messages_total", Help: "Messages by outcome: accepted (upstream 250), rejected (5xx), deferred (4xx).",
		}, []string{"result"}),
		bytesForwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "postern_forwarded_bytes_total", Help: "Message bytes received from clients and streamed to the upstream.",
		}),
		upstreamReplies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_upstream_replies_total", Help: "Upstream replies by stage (connect, mail, rcpt, data) and class (2xx, 4xx, 5xx, error).",
		}, []string{"stage", "class"}),
		upstreamLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "postern_upstream_latency_seconds", Help: "Upstream latency: connect (dial to EHLO done) and data (final dot to reply).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"stage"}),
		upstreamFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_upstream_failures_total", Help: "Failures of an upstream before the message (stage connect: dial, greeting, STARTTLS, XCLIENT, EHLO; mail: MAIL dropped, timed out or 4xx; rcpt: dropped after MAIL), after which the next upstream is tried, by upstream as configured.",
		}, []string{"upstream", "stage"}),
		upstreamMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_upstream_messages_total", Help: "Messages by the upstream they went to (as configured) and outcome: accepted, rejected (5xx), deferred (4xx).",
		}, []string{"upstream", "result"}),
		limitsReached: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_limit_reached_total", Help: "MAIL or RCPT commands refused with 451 4.7.1 because the login was over a sending limit, by limit (messages, recipients).",
		}, []string{"limit"}),
		suspensions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_suspensions_total", Help: "Logins suspended by this instance, by the limit that decided it (messages, recipients, rejected-ratio).",
		}, []string{"limit"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_alerts_total", Help: "Webhook alerts by result: sent, dropped (queue full or every attempt failed).",
		}, []string{"result"}),
	}
	for _, l := range []string{limits.LimitMessages, limits.LimitRecipients} {
		m.limitsReached.WithLabelValues(l)
	}
	m.alerts.WithLabelValues("sent")
	m.alerts.WithLabelValues("dropped")
	for _, reason := range []string{listen.RefusedGlobal, listen.RefusedPerIP, listen.RefusedFlood, refusedLoginTimeout} {
		m.refused.WithLabelValues(reason) // exported at 0 from the start
	}
	reg.MustRegister(m.connections, m.tlsHandshakes, m.tlsFailures, m.refused, m.auth, m.lockouts, m.messages,
		m.bytesForwarded, m.upstreamReplies, m.upstreamLatency, m.upstreamFailures, m.upstreamMessages,
		m.limitsReached, m.suspensions, m.alerts)
	return m
}

// NewActiveSessionsGauge is postern_active_sessions: the open client
// connections of s.
func NewActiveSessionsGauge(s *Server) prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "postern_active_sessions", Help: "Open client connections.",
	}, func() float64 { return float64(s.ActiveSessions()) })
}

// The methods below accept a nil *Metrics, so a Server without metrics
// needs no checks at the call sites.

func (m *Metrics) connection(listener string) {
	if m != nil {
		m.connections.WithLabelValues(listener).Inc()
	}
}

func (m *Metrics) tlsDone(version string) {
	if m != nil {
		m.tlsHandshakes.WithLabelValues(version).Inc()
	}
}

func (m *Metrics) tlsFailed(listener string) {
	if m != nil {
		m.tlsFailures.WithLabelValues(listener).Inc()
	}
}

func (m *Metrics) connRefused(reason string) {
	if m != nil {
		m.refused.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) authResult(backend, result string) {
	if m != nil {
		if backend == "" {
			backend = "none"
		}
		m.auth.WithLabelValues(backend, result).Inc()
		if result == "locked_out" {
			m.lockouts.Inc()
		}
	}
}

func (m *Metrics) message(code int, size int64) {
	if m == nil {
		return
	}
	m.messages.WithLabelValues(messageResult(code)).Inc()
	if code/100 == 2 {
		m.bytesForwarded.Add(float64(size))
	}
}

func messageResult(code int) string {
	switch code / 100 {
	case 2:
		return "accepted"
	case 4:
		return "deferred"
	}
	return "rejected"
}

// upstreamMessage counts a message by the upstream its DATA went to.
func (m *Metrics) upstreamMessage(addr string, code int) {
	if m != nil {
		m.upstreamMessages.WithLabelValues(addr, messageResult(code)).Inc()
	}
}

// upstreamFailure counts a failure of upstream addr before the message.
func (m *Metrics) upstreamFailure(addr, stage string) {
	if m != nil {
		m.upstreamFailures.WithLabelValues(addr, stage).Inc()
	}
}

// NewUpstreamHealthy is postern_upstream_healthy: per upstream (as
// configured), 1 unless it failed within its hold-down and is skipped;
// nil with a single upstream (see Server.perUpstream).
func NewUpstreamHealthy(s *Server) prometheus.Collector {
	if len(s.upstreams) < 2 {
		return nil
	}
	return upstreamHealthy{s.upstreams}
}

type upstreamHealthy struct{ targets upstream.Targets }

var upstreamHealthyDesc = prometheus.NewDesc("postern_upstream_healthy",
	"1 for an upstream (as configured) that new transactions try in its turn, 0 while it is skipped after a failure (--upstream-hold-down).",
	[]string{"upstream"}, nil)

func (c upstreamHealthy) Describe(ch chan<- *prometheus.Desc) { ch <- upstreamHealthyDesc }

func (c upstreamHealthy) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, t := range c.targets {
		v := 0.0
		if t.Healthy(now) {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(upstreamHealthyDesc, prometheus.GaugeValue, v, t.Addr())
	}
}

// upstreamReply counts one upstream answer; code 0 means no answer (a
// network or protocol error).
func (m *Metrics) upstreamReply(stage string, code int) {
	if m == nil {
		return
	}
	class := "error"
	if code >= 200 && code < 600 {
		class = strconv.Itoa(code/100) + "xx"
	}
	m.upstreamReplies.WithLabelValues(stage, class).Inc()
}

func (m *Metrics) upstreamTime(stage string, since time.Time) {
	if m != nil {
		m.upstreamLatency.WithLabelValues(stage).Observe(time.Since(since).Seconds())
	}
}

// LimitReached, Suspended, AlertSent and AlertDropped count for the
// sending limits and the alerts (limits.Metrics).
func (m *Metrics) LimitReached(limit string) {
	if m != nil {
		m.limitsReached.WithLabelValues(limit).Inc()
	}
}

func (m *Metrics) Suspended(limit string) {
	if m != nil {
		m.suspensions.WithLabelValues(limit).Inc()
	}
}

func (m *Metrics) AlertSent() {
	if m != nil {
		m.alerts.WithLabelValues("sent").Inc()
	}
}

func (m *Metrics) AlertDropped() {
	if m != nil {
		m.alerts.WithLabelValues("dropped").Inc()
	}
}
