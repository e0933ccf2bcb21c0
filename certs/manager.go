// Package certs provides the one GetCertificate that every Postern listener
// uses. It combines, in this order of precedence, a directory of certificates
// picked by SNI (the Let's Encrypt live/ layout or <host>.crt/.key), ACME
// certificates obtained through golang.org/x/crypto/acme/autocert, and a
// static default pair (or a self-signed one for `postern demo`). Files are
// reloaded on Reload (SIGHUP) and when they change; a broken new file keeps
// the old certificate.
package certs

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// Sources, as reported in Info.Source.
const (
	SourceStatic     = "static"
	SourceSelfSigned = "self-signed"
	SourceSNIDir     = "sni-dir"
	SourceACME       = "acme"
)

// DefaultPollInterval is how often Run looks at the certificate files'
// modification times.
const DefaultPollInterval = 5 * time.Second

// Config selects the certificate sources. The zero value configures nothing;
// New refuses it.
type Config struct {
	// Hostname is the server's own name (--hostname). A hello without SNI,
	// or for a name with no certificate, gets the default pair, or when
	// there is none, the certificate for Hostname.
	Hostname string

	// CertFile and KeyFile are the static default pair (--tls-cert, --tls-key).
	CertFile, KeyFile string

	// SelfSigned generates an in-memory certificate for Hostname, localhost
	// and 127.0.0.1 as the default pair (`postern demo`).
	SelfSigned bool

	// SNIDir holds DIR/<host>/{fullchain,privkey}.pem and DIR/<host>.{crt,key}
	// (--tls-sni-dir). Certificates are indexed by the names they carry.
	SNIDir string

	// ACMEDomains are the only names ACME certificates are requested for
	// (--acme-domain); empty disables ACME.
	ACMEDomains []string
	// ACMEEmail is the account contact (--acme-email).
	ACMEEmail string
	// ACMECache is the directory for the account key and certificates
	// (--acme-cache). Without it everything is lost on restart and the CA's
	// rate limits are soon hit, so New logs a warning.
	ACMECache string
	// ACMEShared, if set, replaces ACMECache: the cache every
	// replica shares through Redis (--acme-cache redis), whose lock lets
	// one replica order a name at a time.
	ACMEShared *RedisCache
	// ACMEDirectory is the CA's RFC 8555 directory URL (--acme-directory);
	// empty means Let's Encrypt production.
	ACMEDirectory string
	// ACMEHTTPAddr is where HTTP-01 challenges are served (--acme-http;
	// the caller binds it, see HTTP01Addr);
	// empty means ":80", "none" disables HTTP-01 (TLS-ALPN-01 only, which
	// needs a listener on :443 using TLSConfig).
	ACMEHTTPAddr string
	// HTTPHandler answers every request on the HTTP-01 listener that is not
	// an ACME challenge (the autoconfig documents); nil answers 404.
	HTTPHandler http.Handler
	// WrapHTTPListener, if set, wraps the HTTP-01 listener before it
	// serves (cmd/postern caps its connections with it).
	WrapHTTPListener func(net.Listener) net.Listener
	// ACMERenewBefore is how long before expiry ACME certificates are
	// renewed; zero is autocert's default (a third of the lifetime, at most
	// 30 days).
	ACMERenewBefore time.Duration
	// ACMEHTTPClient talks to the CA; nil is http.DefaultClient. Tests set
	// one that trusts Pebble's HTTPS certificate.
	ACMEHTTPClient *http.Client

	// PollInterval is how often Run checks the files for changes; zero is
	// DefaultPollInterval, negative disables polling.
	PollInterval time.Duration

	// Now is the clock for expiry warnings; nil is time.Now.
	Now func() time.Time
}

// Manager owns every certificate Postern serves. Its methods are safe for
// concurrent use.
type Manager struct {
	cfg      Config
	log      *slog.Logger
	hostname string // normalised cfg.Hostname

	// snap is replaced as a whole on reload, so the handshake path reads
	// one consistent view without taking a lock.
	snap atomic.Pointer[snapshot]

	// selfSigned is generated once: regenerating on reload would change the
	// certificate under demo users for no reason.
	selfSigned *tls.Certificate

	acme *acmeSource // nil without ACMEDomains

	reloadMu sync.Mutex // serialises Reload (SIGHUP and the file watcher)
	tlsConf  *tls.Config
}

// entry is one loaded certificate with where it came from.
type entry struct {
	cert              *tls.Certificate
	source            string
	certFile, keyFile string
}

// snapshot is the immutable state GetCertificate reads.
type snapshot struct {
	def *entry // static pair or self-signed; nil if neither is configured
	sni *sniIndex
}

// New validates cfg and loads every file-based certificate. A missing,
// unreadable or mismatched file is an error here (unlike on Reload, where
// the old certificate is kept), so a bad configuration fails at start-up.
func New(cfg Config, log *slog.Logger) (*Manager, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("certs: a static pair needs both a certificate file and a key file")
	}
	if cfg.SelfSigned && cfg.CertFile != "" {
		return nil, errors.New("certs: a self-signed certificate and a static pair are mutually exclusive")
	}
	if cfg.CertFile == "" && !cfg.SelfSigned && cfg.SNIDir == "" && len(cfg.ACMEDomains) == 0 {
		return nil, errors.New("certs: no certificate source configured (static pair, SNI directory, ACME or self-signed)")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	m := &Manager{cfg: cfg, log: log, hostname: normalizeName(cfg.Hostname)}
	if cfg.SelfSigned {
		hosts := []string{"localhost", "127.0.0.1", "::1"}
		if m.hostname != "" && m.hostname != "localhost" {
			hosts = append([]string{m.hostname}, hosts...)
		}
		c, err := SelfSigned(hosts...)
		if err != nil {
			return nil, err
		}
		m.selfSigned = &c
	}
	if len(cfg.ACMEDomains) > 0 {
		a, err := newACMESource(cfg, log)
		if err != nil {
			return nil, err
		}
		m.acme = a
	}
	snap, err := m.load(nil)
	if err != nil {
		return nil, err
	}
	m.snap.Store(snap)
	m.tlsConf = m.buildTLSConfig()
	m.warnExpiring()
	if snap.def == nil && m.hostname == "" {
		log.Warn("certs: no default certificate and no hostname: clients that send no SNI will fail the handshake")
	}
	return m, nil
}

// TLSConfig returns the server configuration for every listener: Postern's
// policy (ServerTLSConfig) with GetCertificate, and, when ACME is on, the
// acme-tls/1 protocol offered only to the CA's TLS-ALPN-01 validation
// hellos — advertising it to everyone would make a mail client that sends
// other ALPN values fail the handshake. The same value is returned each
// time; callers must not modify it.
func (m *Manager) TLSConfig() *tls.Config { return m.tlsConf }

func (m *Manager) buildTLSConfig() *tls.Config {
	conf := ServerTLSConfig(m.GetCertificate)
	if m.acme != nil {
		alpn := conf.Clone()
		alpn.NextProtos = []string{acmeALPNProto}
		conf.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			if isALPNChallenge(hello) {
				return alpn, nil
			}
			return nil, nil
		}
	}
	return conf
}

// GetCertificate picks the certificate for a handshake: SNI directory, then
// ACME, then the default pair; a hello without SNI or for an unknown name
// gets the default pair or, without one, Hostname's certificate. It only
// reads the current snapshot and in-memory ACME state, so it never blocks
// on files or the network.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if m.acme != nil && isALPNChallenge(hello) {
		return m.acme.challengeCert(hello)
	}
	s := m.snap.Load()
	name := normalizeName(hello.ServerName)
	if name != "" {
		if c := m.lookup(s, name); c != nil {
			return c, nil
		}
	}
	if s.def != nil {
		return s.def.cert, nil
	}
	if m.hostname != "" && name != m.hostname {
		if c := m.lookup(s, m.hostname); c != nil {
			return c, nil
		}
	}
	if name == "" {
		return nil, fmt.Errorf("certs: no certificate for a hello without SNI (no default pair, none for hostname %q yet)", m.hostname)
	}
	return nil, fmt.Errorf("certs: no certificate for %q", name)
}

// lookup finds a certificate for name in the SNI directory and then ACME.
func (m *Manager) lookup(s *snapshot, name string) *tls.Certificate {
	if e := s.sni.match(name); e != nil {
		return e.cert
	}
	if m.acme != nil {
		return m.acme.cached(name)
	}
	return nil
}

// Reload re-reads the static pair and the SNI directory. A file that fails
// to load keeps its previous certificate; the returned error (also logged)
// says which and why. New handshakes use the new certificates; established
// connections are not touched.
func (m *Manager) Reload() error {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	old := m.snap.Load()
	snap, err := m.load(old)
	m.snap.Store(snap)
	if err != nil {
		m.log.Error("certs: reload kept some old certificates", "err", err)
	} else {
		m.log.Info("certs: reloaded", "certificates", len(snap.sni.entries)+boolInt(snap.def != nil))
	}
	m.warnExpiring()
	return err
}

// load builds a snapshot from the files. With old == nil (start-up) any
// failure is fatal; otherwise the failing part keeps old's certificate and
// the errors are joined.
func (m *Manager) load(old *snapshot) (*snapshot, error) {
	next := &snapshot{}
	var errs []error
	switch {
	case m.selfSigned != nil:
		next.def = &entry{cert: m.selfSigned, source: SourceSelfSigned}
	case m.cfg.CertFile != "":
		c, err := LoadKeyPair(m.cfg.CertFile, m.cfg.KeyFile)
		if err != nil {
			if old == nil {
				return nil, fmt.Errorf("certs: static pair: %w", err)
			}
			errs = append(errs, err)
			next.def = old.def
		} else {
			next.def = &entry{cert: c, source: SourceStatic, certFile: m.cfg.CertFile, keyFile: m.cfg.KeyFile}
		}
	}
	var prev *sniIndex
	if old != nil {
		prev = old.sni
	}
	idx, err := loadSNIDir(m.cfg.SNIDir, prev)
	if err != nil {
		if old == nil {
			return nil, err
		}
		errs = append(errs, err)
	}
	next.sni = idx
	return next, errors.Join(errs...)
}

// HTTP01Addr is the address the HTTP-01 listener must be bound to
// (Config.ACMEHTTPAddr, ":80" by default), or "" when ACME or HTTP-01 is
// off. The caller binds it and hands it to Run, so that every listener of
// the process is bound before any serves.
func (m *Manager) HTTP01Addr() string {
	if m.acme == nil {
		return ""
	}
	return m.acme.httpAddr
}

// Run does the background work until ctx is cancelled: serving HTTP-01 on
// http01 and obtaining ACME certificates (when ACME is on), and polling
// the certificate files for changes. http01 is the listener bound to
// HTTP01Addr, nil when that is ""; Run closes it. It returns nil after ctx
// is cancelled, or the error that stopped a part: a failing part stops the
// others too (the file poller included), so the caller sees the error at
// once instead of a half-working Manager.
func (m *Manager) Run(ctx context.Context, http01 net.Listener) error {
	if (http01 == nil) != (m.HTTP01Addr() == "") {
		if http01 != nil {
			http01.Close()
		}
		return fmt.Errorf("certs: Run needs a listener for HTTP-01 exactly when HTTP01Addr is set (it is %q)", m.HTTP01Addr())
	}
	g, ctx := errgroup.WithContext(ctx)
	if m.acme != nil {
		g.Go(func() error { return m.acme.run(ctx, http01) })
	}
	if m.cfg.PollInterval > 0 {
		g.Go(func() error {
			m.watch(ctx)
			return nil
		})
	}
	return g.Wait()
}

// normalizeName lowercases a DNS name and drops a trailing dot, the forms
// in which clients may send the same name.
func normalizeName(name string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(name)), ".")
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
