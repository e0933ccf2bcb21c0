package certs

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

const acmeALPNProto = acme.ALPNProto // "acme-tls/1", RFC 8737

// acmeSource wraps autocert. autocert.Manager.GetCertificate blocks for the
// whole issuance (minutes) the first time a name is asked for; Run obtains
// every configured name in the background instead, and the handshake path
// asks autocert only for names already obtained, which autocert answers from
// memory (it renews them by itself with timers).
type acmeSource struct {
	log      *slog.Logger
	mgr      *autocert.Manager
	domains  []string
	httpAddr string       // "" when HTTP-01 is off
	http01   http.Handler // serves /.well-known/acme-challenge/ only
	ready    sync.Map     // domain → struct{}: obtained, safe for the hot path
	lock     *RedisCache  // the shared cache whose lock obtain takes; nil without one

	// wrapLn wraps the HTTP-01 listener (Config.WrapHTTPListener); nil
	// leaves it as it is.
	wrapLn func(net.Listener) net.Listener
}

func newACMESource(cfg Config, log *slog.Logger) (*acmeSource, error) {
	a := &acmeSource{log: log, wrapLn: cfg.WrapHTTPListener}
	for _, d := range cfg.ACMEDomains {
		d = normalizeName(d)
		// autocert refuses names without a dot; wildcards need DNS-01,
		// which autocert does not do. Say so now rather than at the first
		// handshake.
		if !strings.Contains(d, ".") || strings.Contains(d, "*") || net.ParseIP(d) != nil {
			return nil, fmt.Errorf("certs: ACME domain %q: need a DNS name with at least one dot and no wildcard", d)
		}
		a.domains = append(a.domains, d)
	}
	dir := cfg.ACMEDirectory
	if dir == "" {
		dir = autocert.DefaultACMEDirectory
	}
	var cache autocert.Cache
	switch {
	case cfg.ACMEShared != nil:
		cache = cfg.ACMEShared
		a.lock = cfg.ACMEShared
	case cfg.ACMECache != "":
		cache = autocert.DirCache(cfg.ACMECache)
	default:
		log.Warn("certs: no ACME cache directory: the account and certificates are lost on restart, and the CA's rate limits are soon reached")
	}
	a.mgr = &autocert.Manager{
		// Configuring ACME is the administrator's acceptance of the CA's terms.
		Prompt:      autocert.AcceptTOS,
		Cache:       cache,
		HostPolicy:  autocert.HostWhitelist(a.domains...),
		RenewBefore: cfg.ACMERenewBefore,
		Email:       cfg.ACMEEmail,
		Client:      &acme.Client{DirectoryURL: dir, HTTPClient: cfg.ACMEHTTPClient, UserAgent: "postern"},
	}
	switch cfg.ACMEHTTPAddr {
	case "none":
	case "":
		a.httpAddr = ":80"
	default:
		a.httpAddr = cfg.ACMEHTTPAddr
	}
	if a.httpAddr != "" {
		// Calling HTTPHandler is what turns HTTP-01 on in autocert. Anything
		// but a challenge goes to cfg.HTTPHandler, or gets 404.
		other := cfg.HTTPHandler
		if other == nil {
			other = http.NotFoundHandler()
		}
		h := a.mgr.HTTPHandler(other)
		a.http01 = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// autocert checks r.Host against the allow-list as it is, so a
			// validation sent to a port other than 80 ("name:8080") would
			// be refused; the port says nothing about the name.
			if host, _, err := net.SplitHostPort(r.Host); err == nil {
				r.Host = host
			}
			h.ServeHTTP(w, r)
		})
	}
	return a, nil
}

// isALPNChallenge reports whether hello is a TLS-ALPN-01 validation from the
// CA: it offers acme-tls/1 and nothing else (RFC 8737 §3).
func isALPNChallenge(hello *tls.ClientHelloInfo) bool {
	return len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acmeALPNProto
}

// challengeCert answers a TLS-ALPN-01 validation hello from autocert's
// in-memory token certificates.
func (a *acmeSource) challengeCert(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return a.mgr.GetCertificate(hello)
}

// ecdsaHello is the hello Postern shows autocert. autocert picks an RSA
// certificate when a hello does not look ECDSA-capable — including every
// TLS-1.3-only hello, whose cipher suites name no key type — and would then
// order a second certificate per name. Postern serves ECDSA P-256 only,
// which every TLS 1.2+ client supports.
func ecdsaHello(name string) *tls.ClientHelloInfo {
	return &tls.ClientHelloInfo{
		ServerName:       name,
		SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
		SupportedCurves:  []tls.CurveID{tls.CurveP256},
		CipherSuites:     []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
	}
}

// cached returns the certificate for name if it was already obtained, and
// nil otherwise (never starting an issuance on the handshake path).
func (a *acmeSource) cached(name string) *tls.Certificate {
	if _, ok := a.ready.Load(name); !ok {
		return nil
	}
	c, err := a.mgr.GetCertificate(ecdsaHello(name))
	if err != nil {
		a.log.Warn("certs: ACME certificate unavailable", "name", name, "err", err)
		return nil
	}
	return c
}

// run serves HTTP-01 challenges on http01 (nil when HTTP-01 is off) and
// obtains every domain, until ctx ends. The caller binds http01 (certs never
// binds a port: a taken port is then the caller's start-up error, not a
// background one); run closes it. It returns an error if serving stops for
// any reason other than ctx ending.
func (a *acmeSource) run(ctx context.Context, http01 net.Listener) error {
	for _, d := range a.domains {
		go a.obtain(ctx, d)
	}
	if http01 == nil {
		<-ctx.Done()
		return nil
	}
	if a.wrapLn != nil {
		http01 = a.wrapLn(http01)
	}
	srv := &http.Server{
		Handler:           a.http01,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	a.log.Info("certs: serving ACME HTTP-01 challenges", "addr", http01.Addr().String())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(http01) }()
	select {
	case <-ctx.Done():
		srv.Close()
		<-served
		return nil
	case err := <-served:
		srv.Close()
		return fmt.Errorf("certs: ACME HTTP-01 listener %s: %w", http01.Addr(), err)
	}
}

// obtain gets the certificate for domain (from the cache or the CA),
// retrying with backoff. autocert itself remembers a failure for a minute,
// hence the first wait. An issuance in flight when ctx ends runs on to
// autocert's own timeout; autocert offers no way to cancel it.
func (a *acmeSource) obtain(ctx context.Context, domain string) {
	wait := time.Minute
	for {
		c, err := a.getShared(ctx, domain)
		if err == nil {
			a.ready.Store(domain, struct{}{})
			a.log.Info("certs: ACME certificate ready", "name", domain,
				"issuer", c.Leaf.Issuer.String(), "not_after", c.Leaf.NotAfter)
			return
		}
		if ctx.Err() != nil {
			return
		}
		a.log.Error("certs: obtaining ACME certificate failed", "name", domain, "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Hour)
	}
}

// getShared is GetCertificate for domain, under the shared cache's lock on
// it when there is one: taken here, outside autocert, which would otherwise
// wait for it while holding the lock of its whole state (and so stall the
// handshakes of every other name). The lock passes to autocert's order,
// which releases it with its Put. When autocert took a certificate due for
// renewal from the cache, the hold autocert's read took stays for its
// renewal, which starts at once; when it failed, the lock is released.
func (a *acmeSource) getShared(ctx context.Context, domain string) (*tls.Certificate, error) {
	if a.lock == nil {
		return a.mgr.GetCertificate(ecdsaHello(domain))
	}
	if err := a.lock.acquire(ctx, domain); err != nil {
		return nil, err
	}
	c, err := a.mgr.GetCertificate(ecdsaHello(domain))
	if err != nil {
		a.lock.releaseAll(domain)
	} else {
		a.lock.release(domain)
	}
	return c, err
}

// cachedLeafInfo describes domain's certificate for Info: from memory if it
// was obtained, else from the cache directory (check-config does not run
// Run), else as not obtained yet.
func (a *acmeSource) info(ctx context.Context, domain string, now time.Time) Info {
	if c := a.cached(domain); c != nil {
		return newInfo(SourceACME, c, "", "", now)
	}
	if a.mgr.Cache != nil {
		// autocert stores the key and then the chain, PEM, under the bare
		// domain for ECDSA certificates.
		get := a.mgr.Cache.Get
		if a.lock != nil {
			get = a.lock.peek // no lock, no local copy written: only looking
		}
		if data, err := get(ctx, domain); err == nil {
			if c, err := parseCachedCert(data); err == nil {
				return newInfo(SourceACME, c, "", "", now)
			}
		}
	}
	return Info{Source: SourceACME, Names: []string{domain}, Warning: "not obtained yet"}
}
