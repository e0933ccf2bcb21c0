package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/autoconfig"
	"github.com/postern/postern/limits"
	"github.com/postern/postern/limits/state"
	"github.com/postern/postern/policy"
	"github.com/postern/postern/proxy"
	"github.com/postern/postern/proxy/listen"
)

// instance is one configured Postern: everything `serve` runs and
// `check-config` validates, built from the flags in one place.
type instance struct {
	log       *slog.Logger
	certs     *certs.Manager
	auth      *authBackends
	senderMap string // path, reloaded on SIGHUP
	server    *proxy.Server
	drain     time.Duration
	registry  *prometheus.Registry
	ready     *readiness
	// autoconfig serves the client-setup documents (nil without
	// --autoconfig-domain) on httpsAddr (if set) and the HTTP-01 listener.
	autoconfig *autoconfig.Server
	httpsAddr  string
	// httpCaps are the HTTP listeners' connection budgets (https=,
	// HTTP-01, metrics), apart from the SMTP listeners'.
	httpCaps *httpCaps
	// state is the shared store (--state redis://…) behind a fallback to
	// memory; nil with --state memory. evictions watches that Redis's
	// eviction policy (nil with --state memory).
	state     *state.Fallback
	evictions *state.EvictionWatch
	limits    *limitSetup // sending limits, suspensions, alerts
}

// buildInstance validates every setting and builds the components without
// binding any port.
func buildInstance(c *cli.Context, log *slog.Logger) (*instance, error) {
	hostname := c.String("hostname")
	if hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("--hostname not set and the host name is unknown: %w", err)
		}
		hostname = h
	}
	if len(c.StringSlice("upstream")) == 0 {
		return nil, errors.New("--upstream is required (the internal MTA, e.g. 127.0.0.1:25)")
	}
	smtpListen, httpsAddr, err := splitListen(c.StringSlice("listen"))
	if err != nil {
		return nil, err
	}
	var listeners []listen.Listener
	for _, l := range smtpListen {
		pl, err := listen.ParseListener(l)
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, pl)
	}
	received, err := policy.ParseReceivedMode(c.String("received"))
	if err != nil {
		return nil, err
	}
	mynets, err := policy.ParseNetworks(c.String("mynetworks"))
	if err != nil {
		return nil, fmt.Errorf("--mynetworks: %w", err)
	}
	if c.Int64("max-message-size") <= 0 || c.Int("max-recipients") <= 0 {
		return nil, errors.New("--max-message-size and --max-recipients must be positive")
	}
	if c.Int("max-connections") < 0 || c.Int("max-connections-per-ip") < 0 || c.Duration("login-timeout") < 0 {
		return nil, errors.New("--max-connections, --max-connections-per-ip and --login-timeout must not be negative")
	}
	if c.Duration("auth-timeout") < 0 {
		return nil, errors.New("--auth-timeout must not be negative (0: the default)")
	}

	// An HTTP listener without a total cap could again spend the
	// descriptors the SMTP listeners need: 0 is not "no limit" here.
	if c.Int("max-http-connections") < 1 || c.Int("max-http-connections-per-ip") < 0 {
		return nil, errors.New("--max-http-connections must be at least 1 and --max-http-connections-per-ip not negative")
	}

	httpsBind, _, _ := listen.SplitPublicPort(httpsAddr) // checked by splitListen
	inst := &instance{log: log, senderMap: c.String("sender-map"), drain: c.Duration("shutdown-timeout"), httpsAddr: httpsBind}
	inst.httpCaps = newHTTPCaps(c.Int("max-http-connections"), c.Int("max-http-connections-per-ip"), log)
	if c.String("tls-cert") == "" && c.String("tls-sni-dir") == "" && len(c.StringSlice("acme-domain")) == 0 {
		return nil, errors.New("no certificate: set --tls-cert/--tls-key, --tls-sni-dir or --acme-domain")
	}
	inst.autoconfig, err = buildAutoconfig(c, hostname, listeners, httpsAddr, func(name string) (*tls.Certificate, error) {
		return inst.certs.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
	}, log)
	if err != nil {
		return nil, err
	}
	acmeDomains := c.StringSlice("acme-domain")
	var httpHandler http.Handler
	if inst.autoconfig != nil {
		httpHandler = inst.autoconfig.Handler()
		// The documents' host names join the ACME allow-list: a client
		// checks the certificate of autoconfig.D, and an MTA-STS sender
		// that of mta-sts.D (RFC 8461 §3.3).
		if len(acmeDomains) > 0 {
			acmeDomains = append(slices.Clone(acmeDomains), inst.autoconfig.HostNames()...)
		}
	}
	acmeShared, err := buildACMECache(c, log)
	if err != nil {
		return nil, err
	}
	inst.certs, err = certs.New(certs.Config{
		Hostname:      hostname,
		CertFile:      c.String("tls-cert"),
		KeyFile:       c.String("tls-key"),
		SNIDir:        c.String("tls-sni-dir"),
		ACMEDomains:   acmeDomains,
		ACMEEmail:     c.String("acme-email"),
		ACMECache:     c.String("acme-cache"),
		ACMEShared:    acmeShared,
		ACMEDirectory: c.String("acme-directory"),
		ACMEHTTPAddr:  c.String("acme-http"),
		HTTPHandler:   httpHandler,
		WrapHTTPListener: func(ln net.Listener) net.Listener {
			return inst.httpCaps.wrap(ln, httpListenerACME)
		},
	}, log)
	if err != nil {
		return nil, fmt.Errorf("loading certificates: %w", err)
	}
	if inst.auth, err = buildAuth(c, log); err != nil {
		return nil, err
	}
	var senders *policy.SenderMap
	if inst.senderMap != "" {
		if senders, err = policy.LoadSenderMap(inst.senderMap); err != nil {
			return nil, err
		}
		log.Info("sender map loaded", "path", inst.senderMap, "entries", senders.Len())
	}
	upstream, err := buildUpstream(c)
	if err != nil {
		return nil, err
	}
	proxyFrom, err := policy.ParseNetworks(c.String("proxy-protocol-from"))
	if err != nil {
		return nil, fmt.Errorf("--proxy-protocol-from: %w", err)
	}
	shared, err := sharedConfig(c, inst.httpCaps)
	if err != nil {
		return nil, err
	}
	if inst.state, inst.evictions, err = buildState(c, log); err != nil {
		return nil, err
	}
	var lockoutStore state.Store // nil: the lockout's own bounded memory
	if inst.state != nil {
		lockoutStore = inst.state
	}
	inst.registry = prometheus.NewRegistry()
	inst.registry.MustRegister(newCertExpiry(inst.certs))
	inst.registry.MustRegister(newStateDegraded(inst.state))
	inst.registry.MustRegister(newACMECacheDegraded(acmeShared))
	inst.registry.MustRegister(inst.httpCaps.collectors()...)
	inst.registry.MustRegister(newStateEvicting(inst.evictions))
	if inst.auth.users != nil {
		inst.registry.MustRegister(newUsersHashes(inst.auth.users))
	}
	inst.ready = &readiness{certs: inst.certs, upstreams: c.StringSlice("upstream")}
	metrics := proxy.NewMetrics(inst.registry)
	var limitStore state.Store = state.NewMemory(state.MemoryConfig{})
	if inst.state != nil {
		limitStore = inst.state
	}
	if inst.limits, err = buildLimits(c, hostname, limitStore, metrics, log); err != nil {
		return nil, err
	}
	inst.server, err = proxy.New(proxy.Config{
		Hostname:          hostname,
		Listeners:         listeners,
		TLSConfig:         inst.certs.TLSConfig(),
		Upstream:          upstream,
		UpstreamAddrs:     c.StringSlice("upstream"),
		UpstreamHoldDown:  c.Duration("upstream-hold-down"),
		Metrics:           metrics,
		ProxyProtocolFrom: proxyFrom,
		Auth:              inst.auth.cache,
		Limiter: limits.NewLockout(limits.LockoutConfig{
			MaxFailures:    c.Int("auth-max-failures"),
			MaxUnavailable: c.Int("auth-max-unavailable"),
			Window:         c.Duration("auth-lockout-window"),
			LoginDelayBase: c.Duration("auth-login-delay"),
			MaxLoginDelay:  c.Duration("auth-login-delay-max"),
			Log:            log,
			Store:          lockoutStore,
			Alerts:         inst.limits.limits,
		}),
		MyNetworks:      mynets,
		Received:        received,
		MaxMessageBytes: c.Int64("max-message-size"),
		MaxRecipients:   c.Int("max-recipients"),
		MaxAuthFailures: c.Int("max-auth-failures-per-connection"),
		UpstreamPool:    c.Int("upstream-pool"),
		CommandTimeout:  c.Duration("command-timeout"),
		DataTimeout:     c.Duration("data-timeout"),
		AuthTimeout:     c.Duration("auth-timeout"),
		Log:             log,

		MaxConnections:      c.Int("max-connections"),
		MaxConnectionsPerIP: c.Int("max-connections-per-ip"),
		LoginTimeout:        c.Duration("login-timeout"),

		Limits:     inst.limits.limits,
		HeaderFrom: inst.limits.headerFrom,
		Shared:     shared,
	})
	if err != nil {
		return nil, err
	}
	inst.registry.MustRegister(proxy.NewActiveSessionsGauge(inst.server))
	if healthy := proxy.NewUpstreamHealthy(inst.server); healthy != nil {
		inst.registry.MustRegister(healthy)
	}
	inst.server.SetSenderMap(senders)
	return inst, nil
}

// reload re-reads what can change safely while serving: users, sender map
// and certificates. A broken file keeps the old value and is logged.
func (inst *instance) reload() {
	ok := true
	if err := inst.auth.reload(); err != nil {
		ok = false
		inst.log.Error("reload: users file kept as before", "err", err)
	}
	if inst.senderMap != "" {
		if m, err := policy.LoadSenderMap(inst.senderMap); err != nil {
			ok = false
			inst.log.Error("reload: sender map kept as before", "err", err)
		} else {
			inst.server.SetSenderMap(m)
			inst.log.Info("sender map reloaded", "path", inst.senderMap, "entries", m.Len())
		}
	}
	if !inst.limits.reload(inst.log) {
		ok = false
	}
	if err := inst.certs.Reload(); err != nil {
		ok = false
		inst.log.Error("reload: certificates kept as before", "err", err)
	}
	inst.log.Info("reloaded", "ok", ok)
}
