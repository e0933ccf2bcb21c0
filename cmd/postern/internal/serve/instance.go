package serve

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

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/autoconfig"
	"github.com/postern/postern/limits"
	"github.com/postern/postern/limits/state"
	"github.com/postern/postern/policy"
	"github.com/postern/postern/proxy"
	"github.com/postern/postern/proxy/listen"
	"github.com/postern/postern/proxy/upstream"
)

// Instance is one configured Postern: everything `serve` runs and
// `check-config` validates, built from a Config in one place.
type Instance struct {
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
	// upstream is the upstream settings (Addr: the first), for /readyz's
	// and check-config's probes.
	upstream  upstream.Config
	upstreams []string
	metrics   string // --metrics ADDR ("": none)
	pprof     bool
	fileNeed  fileNeed
	control   controlConfig
	// state is the shared store (--state redis://…) behind a fallback to
	// memory; nil with --state memory. evictions watches that Redis's
	// eviction policy (nil with --state memory).
	state     *state.Fallback
	evictions *state.EvictionWatch
	limits    *limitSetup // sending limits, suspensions, alerts
}

// controlConfig is where the control socket goes.
type controlConfig struct {
	path     string
	explicit bool // named by the administrator
}

// Build validates every setting and builds the components without
// binding any port.
func Build(cfg Config, log *slog.Logger) (*Instance, error) {
	hostname, err := resolveHostname(cfg.Hostname)
	if err != nil {
		return nil, err
	}
	if len(cfg.Upstreams) == 0 {
		return nil, errors.New("--upstream is required (the internal MTA, e.g. 127.0.0.1:25)")
	}
	listeners, httpsAddr, err := parseListen(cfg.Listen)
	if err != nil {
		return nil, err
	}
	received, err := policy.ParseReceivedMode(cfg.Received)
	if err != nil {
		return nil, err
	}
	mynets, err := policy.ParseNetworks(cfg.MyNetworks)
	if err != nil {
		return nil, fmt.Errorf("--mynetworks: %w", err)
	}
	if cfg.MaxMessageSize <= 0 || cfg.MaxRecipients <= 0 {
		return nil, errors.New("--max-message-size and --max-recipients must be positive")
	}
	if cfg.MaxConnections < 0 || cfg.MaxConnectionsPerIP < 0 || cfg.LoginTimeout < 0 {
		return nil, errors.New("--max-connections, --max-connections-per-ip and --login-timeout must not be negative")
	}
	if cfg.AuthTimeout < 0 {
		return nil, errors.New("--auth-timeout must not be negative (0: the default)")
	}

	// An HTTP listener without a total cap could again spend the
	// descriptors the SMTP listeners need: 0 is not "no limit" here.
	if cfg.MaxHTTPConnections < 1 || cfg.MaxHTTPConnectionsPerIP < 0 {
		return nil, errors.New("--max-http-connections must be at least 1 and --max-http-connections-per-ip not negative")
	}

	httpsBind, _, _ := listen.SplitPublicPort(httpsAddr) // checked by splitListen
	inst := &Instance{log: log, senderMap: cfg.SenderMap, drain: cfg.ShutdownTimeout, httpsAddr: httpsBind,
		upstreams: cfg.Upstreams, metrics: cfg.Metrics, pprof: cfg.Pprof,
		control: controlConfig{path: cfg.ControlSocket, explicit: cfg.ControlSocketSet},
		fileNeed: fileNeed{
			smtp:    cfg.MaxConnections,
			http:    cfg.MaxHTTPConnections,
			metrics: listen.MetricsMaxConnections,
			pool:    cfg.Upstream.Pool * len(cfg.Upstreams), // a pool per upstream
		}}
	inst.httpCaps = newHTTPCaps(cfg.MaxHTTPConnections, cfg.MaxHTTPConnectionsPerIP, log)
	if cfg.TLS.CertFile == "" && cfg.TLS.SNIDir == "" && len(cfg.ACME.Domains) == 0 {
		return nil, errors.New("no certificate: set --tls-cert/--tls-key, --tls-sni-dir or --acme-domain")
	}
	inst.autoconfig, err = buildAutoconfig(cfg.Autoconfig, hostname, listeners, httpsAddr, func(name string) (*tls.Certificate, error) {
		return inst.certs.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
	}, log)
	if err != nil {
		return nil, err
	}
	acmeDomains := cfg.ACME.Domains
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
	acmeShared, err := buildACMECache(cfg.ACME, cfg.State, log)
	if err != nil {
		return nil, err
	}
	inst.certs, err = certs.New(certs.Config{
		Hostname:      hostname,
		CertFile:      cfg.TLS.CertFile,
		KeyFile:       cfg.TLS.KeyFile,
		SNIDir:        cfg.TLS.SNIDir,
		ACMEDomains:   acmeDomains,
		ACMEEmail:     cfg.ACME.Email,
		ACMECache:     cfg.ACME.Cache,
		ACMEShared:    acmeShared,
		ACMEDirectory: cfg.ACME.Directory,
		ACMEHTTPAddr:  cfg.ACME.HTTP,
		HTTPHandler:   httpHandler,
		WrapHTTPListener: func(ln net.Listener) net.Listener {
			return inst.httpCaps.wrap(ln, httpListenerACME)
		},
	}, log)
	if err != nil {
		return nil, fmt.Errorf("loading certificates: %w", err)
	}
	if inst.auth, err = buildAuth(cfg.Auth, log); err != nil {
		return nil, err
	}
	var senders *policy.SenderMap
	if inst.senderMap != "" {
		if senders, err = policy.LoadSenderMap(inst.senderMap); err != nil {
			return nil, err
		}
		log.Info("sender map loaded", "path", inst.senderMap, "entries", senders.Len())
	}
	if inst.upstream, err = BuildUpstream(cfg.Upstream, cfg.Upstreams[0]); err != nil {
		return nil, err
	}
	inst.upstream.HeloName = hostname
	proxyFrom, err := policy.ParseNetworks(cfg.ProxyProtocolFrom)
	if err != nil {
		return nil, fmt.Errorf("--proxy-protocol-from: %w", err)
	}
	shared, err := sharedConfig(cfg.Shared, inst.httpCaps)
	if err != nil {
		return nil, err
	}
	if inst.state, inst.evictions, err = buildState(cfg.State, log); err != nil {
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
	inst.ready = &readiness{certs: inst.certs, upstream: inst.upstream, upstreams: cfg.Upstreams}
	metrics := proxy.NewMetrics(inst.registry)
	var limitStore state.Store = state.NewMemory(state.MemoryConfig{})
	if inst.state != nil {
		limitStore = inst.state
	}
	if inst.limits, err = buildLimits(cfg.Limits, hostname, limitStore, metrics, log); err != nil {
		return nil, err
	}
	inst.server, err = proxy.New(proxy.Config{
		Hostname:          hostname,
		Listeners:         listeners,
		TLSConfig:         inst.certs.TLSConfig(),
		Upstream:          inst.upstream,
		UpstreamAddrs:     cfg.Upstreams,
		UpstreamHoldDown:  cfg.Upstream.HoldDown,
		Metrics:           metrics,
		ProxyProtocolFrom: proxyFrom,
		Auth:              inst.auth.cache,
		Limiter: limits.NewLockout(limits.LockoutConfig{
			MaxFailures:    cfg.Lockout.MaxFailures,
			MaxUnavailable: cfg.Lockout.MaxUnavailable,
			Window:         cfg.Lockout.Window,
			LoginDelayBase: cfg.Lockout.LoginDelay,
			MaxLoginDelay:  cfg.Lockout.LoginDelayMax,
			Log:            log,
			Store:          lockoutStore,
			Alerts:         inst.limits.limits,
		}),
		MyNetworks:      mynets,
		Received:        received,
		MaxMessageBytes: cfg.MaxMessageSize,
		MaxRecipients:   cfg.MaxRecipients,
		MaxAuthFailures: cfg.MaxAuthFailures,
		UpstreamPool:    cfg.Upstream.Pool,
		CommandTimeout:  cfg.CommandTimeout,
		DataTimeout:     cfg.DataTimeout,
		AuthTimeout:     cfg.AuthTimeout,
		Log:             log,

		MaxConnections:      cfg.MaxConnections,
		MaxConnectionsPerIP: cfg.MaxConnectionsPerIP,
		LoginTimeout:        cfg.LoginTimeout,

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

// Reload re-reads what can change safely while serving: users, sender map,
// limit file and certificates. A broken file keeps the old value and is
// logged.
func (inst *Instance) Reload() {
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

// resolveHostname is --hostname, or the host name when it is not set.
func resolveHostname(name string) (string, error) {
	if name != "" {
		return name, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("--hostname not set and the host name is unknown: %w", err)
	}
	return h, nil
}

// Certs is the certificate manager (check-config lists what it serves).
func (inst *Instance) Certs() *certs.Manager { return inst.certs }

// Autoconfig is the document server, nil without --autoconfig-domain.
func (inst *Instance) Autoconfig() *autoconfig.Server { return inst.autoconfig }

// Server is the SMTP server (the demo listens and serves it alone).
func (inst *Instance) Server() *proxy.Server { return inst.server }

// Drain is --shutdown-timeout: what Server().Serve gives sessions in
// flight once its context ends.
func (inst *Instance) Drain() time.Duration { return inst.drain }

// Upstream is the upstream settings as sessions dial them (HeloName is
// the hostname), with Addr the first of Upstreams.
func (inst *Instance) Upstream() upstream.Config { return inst.upstream }

// Upstreams is every --upstream, in the order of failover.
func (inst *Instance) Upstreams() []string { return inst.upstreams }
