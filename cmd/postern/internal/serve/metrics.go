package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/postern/postern/auth/usersfile"
	"github.com/postern/postern/certs"
	"github.com/postern/postern/proxy/upstream"
)

// usersHashes exports, at each scrape, how many users file entries have a
// weak hash (by scheme, a bounded set of Dovecot scheme names) and how many
// were skipped for an unknown scheme. It reads the current table, so a
// reload shows at the next scrape.
type usersHashes struct {
	users   *usersfile.File
	weak    *prometheus.Desc
	skipped *prometheus.Desc
	waiting *prometheus.Desc
}

func newUsersHashes(users *usersfile.File) *usersHashes {
	return &usersHashes{
		users: users,
		weak: prometheus.NewDesc("postern_users_weak_hashes",
			"Users file entries whose hash is not a salted slow hash (clear text, MD5, SHA, DES/MD5-crypt, CRAM-MD5...), by scheme.",
			[]string{"scheme"}, nil),
		skipped: prometheus.NewDesc("postern_users_skipped_entries",
			"Users file entries left out because Postern does not verify their password scheme.", nil, nil),
		waiting: prometheus.NewDesc("postern_auth_verifications_waiting",
			"Logins queued for a password verification slot (--auth-concurrency) now.", nil, nil),
	}
}

func (u *usersHashes) Describe(ch chan<- *prometheus.Desc) {
	ch <- u.weak
	ch <- u.skipped
	ch <- u.waiting
}

func (u *usersHashes) Collect(ch chan<- prometheus.Metric) {
	for scheme, n := range u.users.WeakHashes() {
		ch <- prometheus.MustNewConstMetric(u.weak, prometheus.GaugeValue, float64(n), scheme)
	}
	ch <- prometheus.MustNewConstMetric(u.skipped, prometheus.GaugeValue, float64(u.users.SkippedEntries()))
	ch <- prometheus.MustNewConstMetric(u.waiting, prometheus.GaugeValue, float64(u.users.VerificationsWaiting()))
}

// certExpiry exports each served certificate's expiry time. Names come from
// the configuration (files, ACME domains), so the label set is bounded.
type certExpiry struct {
	m    *certs.Manager
	desc *prometheus.Desc
}

func newCertExpiry(m *certs.Manager) *certExpiry {
	return &certExpiry{m: m, desc: prometheus.NewDesc("postern_certificate_expiry_timestamp_seconds",
		"NotAfter of each certificate Postern would serve.", []string{"source", "name"}, nil)}
}

func (c *certExpiry) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *certExpiry) Collect(ch chan<- prometheus.Metric) {
	for _, ci := range c.m.Certificates() {
		if ci.NotAfter.IsZero() || len(ci.Names) == 0 {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue,
			float64(ci.NotAfter.Unix()), ci.Source, ci.Names[0])
	}
}

// readiness answers /readyz: a certificate is loaded and at least one
// upstream greets as a session's dial would have it (upstream.Probe: TLS,
// greeting, EHLO, STARTTLS, AUTH as configured; a transaction fails over
// to it). The upstream probe is cached for readinessCacheFor so a scraping
// load balancer does not hammer the MTAs.
type readiness struct {
	certs     *certs.Manager
	upstream  upstream.Config // Addr set per probe
	upstreams []string        // in order: the first that answers ends the probe

	mu      sync.Mutex
	checked time.Time
	err     error
}

func (r *readiness) check() error {
	usable := false
	for _, ci := range r.certs.Certificates() {
		if !ci.NotAfter.IsZero() && time.Now().Before(ci.NotAfter) {
			usable = true
		}
	}
	if !usable {
		return errors.New("no usable certificate loaded")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) < readinessCacheFor {
		return r.err
	}
	r.checked = time.Now()
	var errs []error
	for _, a := range r.upstreams {
		up := r.upstream
		up.Addr = a
		// Not the request's context: the verdict is cached for the
		// next requests, whoever hung up.
		ctx, cancel := context.WithTimeout(context.Background(), readinessProbeTimeout)
		err := upstream.Probe(ctx, up)
		cancel()
		if err == nil {
			r.err = nil
			return nil
		}
		errs = append(errs, fmt.Errorf("upstream %s unreachable: %w", a, err))
	}
	r.err = errors.Join(errs...)
	return r.err
}

// serveMetrics serves /metrics, /healthz, /readyz (and pprof) on ln until ctx ends.
func serveMetrics(ctx context.Context, ln net.Listener, reg *prometheus.Registry, ready *readiness, withPprof bool, log *slog.Logger) error {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready.check(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	log.Info("metrics listening", "addr", ln.Addr().String())
	// The autoconfig listener's limits: an idle or dribbling client must
	// not hold one of the few connections this listener has.
	srv := newHTTPServer(mux, log)
	if withPprof {
		// A CPU profile or trace streams for ?seconds= (30 by default),
		// and pprof refuses a duration over the write timeout.
		srv.WriteTimeout = 0
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics listener: %w", err)
	}
	return nil
}
