package serve

import "time"

// Config is every setting of `serve` (and of check-config, dns-records,
// status and unsuspend, which take the same flags), as plain data: one
// field per flag, named after it (DESIGN.md's command-line contract).
// cmd/postern fills it from the flags, which carry the defaults; a zero
// value here is not a default.
type Config struct {
	Hostname  string   // "": the host name
	Listen    []string // MODE=ADDR[@PORT] entries, SMTP and https= together
	Upstreams []string // HOST:PORT, in the order of failover
	Upstream  UpstreamConfig

	SenderMap  string // path, reloaded on SIGHUP
	TLS        TLSConfig
	ACME       ACMEConfig
	Auth       AuthConfig
	Lockout    LockoutConfig
	State      StateConfig
	Limits     LimitConfig
	Autoconfig AutoconfigConfig
	Shared     SharedConfig

	// ControlSocket is the control socket's path ("" or "none": none);
	// ControlSocketSet says the administrator named it, so a missing
	// directory is an error rather than a skipped default.
	ControlSocket    string
	ControlSocketSet bool

	MyNetworks        string // CIDRs, comma-separated
	ProxyProtocolFrom string // CIDRs, comma-separated
	Received          string // anonymous|full|none

	MaxMessageSize          int64
	MaxRecipients           int
	MaxAuthFailures         int // per connection
	CommandTimeout          time.Duration
	DataTimeout             time.Duration
	AuthTimeout             time.Duration
	MaxConnections          int
	MaxConnectionsPerIP     int
	MaxHTTPConnections      int
	MaxHTTPConnectionsPerIP int
	LoginTimeout            time.Duration
	ShutdownTimeout         time.Duration

	Metrics string // ADDR of /metrics, /healthz, /readyz ("": none)
	Pprof   bool   // /debug/pprof/ on the metrics listener
}

// UpstreamConfig is the --upstream-* settings, shared by every upstream.
type UpstreamConfig struct {
	Timeout  time.Duration
	HoldDown time.Duration
	Pool     int    // idle connections kept per upstream
	TLS      string // none|starttls|tls
	TLSCA    string // PEM file ("": the system's CAs)
	AuthFile string // 'username:password' file ("": no AUTH)
	XCLIENT  bool
}

// TLSConfig is where the certificates come from, besides ACME.
type TLSConfig struct {
	CertFile, KeyFile string
	SNIDir            string
}

// ACMEConfig is the --acme-* settings.
type ACMEConfig struct {
	Domains      []string
	Email        string
	Cache        string // directory, or ACMECacheRedis
	CacheKeyFile string // with ACMECacheRedis
	CacheLocal   string // with ACMECacheRedis: this replica's copy
	Directory    string // URL
	HTTP         string // HTTP-01 listener ADDR, or "none"
}

// AuthConfig is the authentication backends, in the order they are tried.
type AuthConfig struct {
	Users       string // users file
	DovecotAuth string // unix path or HOST:PORT
	LDAP        LDAPConfig
	CacheTTL    time.Duration
	Concurrency int // hashes verified at once (0: no bound)
}

// LDAPConfig is the --ldap-* settings.
type LDAPConfig struct {
	URL              string // "": no LDAP
	StartTLS         bool
	Base             string
	Filter           string
	BindDN           string
	BindPasswordFile string
	AliasAttribute   string
	LoginAttribute   string
}

// LockoutConfig is the AUTH lockout and login delay (--auth-max-failures
// ...).
type LockoutConfig struct {
	MaxFailures    int
	MaxUnavailable int
	Window         time.Duration
	LoginDelay     time.Duration
	LoginDelayMax  time.Duration
}

// StateConfig is where the counters live (--state).
type StateConfig struct {
	Spec         string // StateMemory, redis://… or rediss://…
	PasswordFile string
}

// LimitConfig is the sending limits, suspensions and alerts.
type LimitConfig struct {
	Messages             string // N/WINDOW or *
	Recipients           string // N/WINDOW or *
	File                 string // per-login overrides, reloaded on SIGHUP
	SuspendAfter         int
	SuspendRejectedRatio string // "50%", "50" or "0.5"
	SuspendFor           time.Duration
	AlertWebhook         string
	CheckHeaderFrom      string // off|warn|enforce
}

// AutoconfigConfig is the client-setup documents' settings.
type AutoconfigConfig struct {
	Domains      []string // "": no documents
	IMAP         string   // HOST:PORT
	Username     string
	MTASTSMode   string
	MTASTSMX     []string
	MTASTSMaxAge time.Duration
	TLSRPTEmail  string
}

// SharedConfig is the tls+https= listener's settings.
type SharedConfig struct {
	SMTPNames      []string
	FirstBytesWait time.Duration
}
