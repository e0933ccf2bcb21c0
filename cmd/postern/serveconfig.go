package main

import (
	"github.com/urfave/cli/v2"

	"github.com/postern/postern/cmd/postern/internal/serve"
)

// serveConfig turns serveFlags (given on the command line, in the
// environment or in the --config file, or at their defaults) into the
// serve package's Config: the one place where a flag's name meets its
// setting.
func serveConfig(c *cli.Context) serve.Config {
	return serve.Config{
		Hostname:  c.String("hostname"),
		Listen:    c.StringSlice("listen"),
		Upstreams: c.StringSlice("upstream"),
		Upstream: serve.UpstreamConfig{
			Timeout:  c.Duration("upstream-timeout"),
			HoldDown: c.Duration("upstream-hold-down"),
			Pool:     c.Int("upstream-pool"),
			TLS:      c.String("upstream-tls"),
			TLSCA:    c.String("upstream-tls-ca"),
			AuthFile: c.String("upstream-auth-file"),
			XCLIENT:  c.Bool("upstream-xclient"),
		},
		SenderMap: c.String("sender-map"),
		TLS: serve.TLSConfig{
			CertFile: c.String("tls-cert"),
			KeyFile:  c.String("tls-key"),
			SNIDir:   c.String("tls-sni-dir"),
		},
		ACME: serve.ACMEConfig{
			Domains:      c.StringSlice("acme-domain"),
			Email:        c.String("acme-email"),
			Cache:        c.String("acme-cache"),
			CacheKeyFile: c.String("acme-cache-key-file"),
			CacheLocal:   c.String("acme-cache-local"),
			Directory:    c.String("acme-directory"),
			HTTP:         c.String("acme-http"),
		},
		Auth: serve.AuthConfig{
			Users:       c.String("users"),
			DovecotAuth: c.String("dovecot-auth"),
			LDAP: serve.LDAPConfig{
				URL:              c.String("ldap-url"),
				StartTLS:         c.Bool("ldap-starttls"),
				Base:             c.String("ldap-base"),
				Filter:           c.String("ldap-filter"),
				BindDN:           c.String("ldap-bind-dn"),
				BindPasswordFile: c.String("ldap-bind-password-file"),
				AliasAttribute:   c.String("ldap-alias-attribute"),
				LoginAttribute:   c.String("ldap-login-attribute"),
			},
			CacheTTL:    c.Duration("auth-cache-ttl"),
			Concurrency: c.Int("auth-concurrency"),
		},
		Lockout: serve.LockoutConfig{
			MaxFailures:    c.Int("auth-max-failures"),
			MaxUnavailable: c.Int("auth-max-unavailable"),
			Window:         c.Duration("auth-lockout-window"),
			LoginDelay:     c.Duration("auth-login-delay"),
			LoginDelayMax:  c.Duration("auth-login-delay-max"),
		},
		State: serve.StateConfig{
			Spec:         c.String("state"),
			PasswordFile: c.String("state-password-file"),
		},
		Limits: serve.LimitConfig{
			Messages:             c.String("limit-messages"),
			Recipients:           c.String("limit-recipients"),
			File:                 c.String("limit-file"),
			SuspendAfter:         c.Int("suspend-after"),
			SuspendRejectedRatio: c.String("suspend-rejected-ratio"),
			SuspendFor:           c.Duration("suspend-for"),
			AlertWebhook:         c.String("alert-webhook"),
			CheckHeaderFrom:      c.String("check-header-from"),
		},
		Autoconfig: serve.AutoconfigConfig{
			Domains:      c.StringSlice("autoconfig-domain"),
			IMAP:         c.String("autoconfig-imap"),
			Username:     c.String("autoconfig-username"),
			MTASTSMode:   c.String("mta-sts-mode"),
			MTASTSMX:     c.StringSlice("mta-sts-mx"),
			MTASTSMaxAge: c.Duration("mta-sts-max-age"),
			TLSRPTEmail:  c.String("tls-rpt-email"),
		},
		Shared: serve.SharedConfig{
			SMTPNames:      c.StringSlice("shared-smtp-name"),
			FirstBytesWait: c.Duration("shared-first-bytes-wait"),
		},
		ControlSocket:    c.String("control-socket"),
		ControlSocketSet: c.IsSet("control-socket"),

		MyNetworks:        c.String("mynetworks"),
		ProxyProtocolFrom: c.String("proxy-protocol-from"),
		Received:          c.String("received"),

		MaxMessageSize:          c.Int64("max-message-size"),
		MaxRecipients:           c.Int("max-recipients"),
		MaxAuthFailures:         c.Int("max-auth-failures-per-connection"),
		CommandTimeout:          c.Duration("command-timeout"),
		DataTimeout:             c.Duration("data-timeout"),
		AuthTimeout:             c.Duration("auth-timeout"),
		MaxConnections:          c.Int("max-connections"),
		MaxConnectionsPerIP:     c.Int("max-connections-per-ip"),
		MaxHTTPConnections:      c.Int("max-http-connections"),
		MaxHTTPConnectionsPerIP: c.Int("max-http-connections-per-ip"),
		LoginTimeout:            c.Duration("login-timeout"),
		ShutdownTimeout:         c.Duration("shutdown-timeout"),

		Metrics: c.String("metrics"),
		Pprof:   c.Bool("pprof"),
	}
}
