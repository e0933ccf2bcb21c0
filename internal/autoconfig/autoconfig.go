// Package autoconfig serves the documents with which mail clients set up
// their outgoing server by themselves — Thunderbird autoconfig, Outlook
// autodiscover (POX), Apple configuration profiles — and the MTA-STS policy,
// and lists the DNS records that point at them (RFC 6186 SRV, CNAMEs,
// _mta-sts and TLS-RPT TXT).
//
// It only describes Postern's listeners; it knows nothing of users, so every
// address in a configured domain gets the same answer and none reveals
// whether the address exists. It never imports proxy or certs: the command
// passes in the ports and a function that returns the served certificate.
package autoconfig

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"
)

// Host-name prefixes under a mail domain that clients ask (Thunderbird:
// autoconfig.D; Outlook: autodiscover.D; RFC 8461 §3.3: mta-sts.D).
const (
	PrefixAutoconfig   = "autoconfig."
	PrefixAutodiscover = "autodiscover."
	PrefixMTASTS       = "mta-sts."
)

// DefaultUsername is the login a client is told to use: the whole address
// (Thunderbird's placeholder; substituted for Outlook and Apple).
const DefaultUsername = "%EMAILADDRESS%"

// DefaultMTASTSMaxAge is the policy's max_age when none is given: one week,
// RFC 8461 §3.2's suggestion of "weeks or greater".
const DefaultMTASTSMaxAge = 7 * 24 * time.Hour

// maxMTASTSMaxAge is the RFC 8461 §3.2 ceiling (31557600 s, a year).
const maxMTASTSMaxAge = 31557600 * time.Second

// MTA-STS modes (RFC 8461 §5).
const (
	ModeTesting = "testing"
	ModeEnforce = "enforce"
	ModeNone    = "none"
)

// Endpoint is one server a client is told about.
type Endpoint struct {
	Host string
	Port int
	// ImplicitTLS is TLS from the first byte (465, 993, RFC 8314);
	// otherwise the client must use STARTTLS.
	ImplicitTLS bool
	// LastResort is a port shared with HTTPS (443, --listen tls+https=)
	// for networks that let nothing else out: listed after every other
	// submission port, so a client tries it only when they fail.
	LastResort bool
}

// Config is what the documents describe. Build it with the values of
// `postern serve`, then check it with New.
type Config struct {
	// Domains are the mail domains whose users send through Postern
	// (--autoconfig-domain).
	Domains []string
	// Submission are Postern's submission listeners, all on the same host
	// (--hostname), implicit TLS first in the documents.
	Submission []Endpoint
	// IMAP is the incoming server (--autoconfig-imap); nil leaves it out.
	IMAP *Endpoint
	// Username is the login template (--autoconfig-username) with the
	// placeholders %EMAILADDRESS%, %EMAILLOCALPART% and %EMAILDOMAIN%.
	Username string
	// MTASTSMode is testing, enforce or none (--mta-sts-mode); empty serves
	// no policy.
	MTASTSMode string
	// MTASTSMX are the policy's mx patterns (--mta-sts-mx).
	MTASTSMX []string
	// MTASTSMaxAge is the policy's max_age (--mta-sts-max-age).
	MTASTSMaxAge time.Duration
	// TLSRPTEmail receives TLS reports (RFC 8460); used by Records only.
	TLSRPTEmail string
	// HTTPSPort is the port of the HTTPS listener, for the _autodiscover SRV
	// record; zero leaves the record out.
	HTTPSPort int
	// Certificate returns the certificate served for a TLS server name; the
	// Apple profile is signed with its key. Nil serves unsigned profiles.
	Certificate func(serverName string) (*tls.Certificate, error)
	// Log receives errors only (never an address or a request body).
	Log *slog.Logger
}

// Server answers the HTTP requests; see Handler.
type Server struct {
	cfg      Config
	domains  map[string]bool
	hostname string // Submission host, for the signing certificate over plain HTTP
	policy   string // MTA-STS policy text; empty when off
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if len(cfg.Domains) == 0 {
		return nil, errors.New("autoconfig: no domain")
	}
	s := &Server{cfg: cfg, domains: map[string]bool{}}
	if s.cfg.Log == nil {
		s.cfg.Log = slog.New(slog.DiscardHandler)
	}
	for i, d := range cfg.Domains {
		d = normalizeHost(d)
		if !isHostName(d) {
			return nil, fmt.Errorf("autoconfig: domain %q is not a host name", cfg.Domains[i])
		}
		s.cfg.Domains[i] = d
		s.domains[d] = true
	}
	if len(cfg.Submission) == 0 {
		return nil, errors.New("autoconfig: no submission listener to describe")
	}
	for _, e := range append(append([]Endpoint(nil), cfg.Submission...), derefEndpoint(cfg.IMAP)...) {
		if !isHostName(normalizeHost(e.Host)) && net.ParseIP(e.Host) == nil && e.Host != "localhost" {
			return nil, fmt.Errorf("autoconfig: server %q (--hostname or --autoconfig-imap) is not a fully qualified host name that clients can reach", e.Host)
		}
		if e.Port <= 0 || e.Port > 65535 {
			return nil, fmt.Errorf("autoconfig: server %s: port %d out of range", e.Host, e.Port)
		}
	}
	s.hostname = cfg.Submission[0].Host
	if s.cfg.Username == "" {
		s.cfg.Username = DefaultUsername
	}
	if len(s.cfg.Username) > 255 || strings.ContainsFunc(s.cfg.Username, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return nil, errors.New("autoconfig: the username template must be at most 255 printable characters")
	}
	if s.cfg.TLSRPTEmail != "" {
		if _, _, err := parseAddress(s.cfg.TLSRPTEmail); err != nil {
			return nil, fmt.Errorf("autoconfig: TLS-RPT address %q: %w", s.cfg.TLSRPTEmail, err)
		}
	}
	policy, err := buildPolicy(s.cfg.MTASTSMode, s.cfg.MTASTSMX, s.cfg.MTASTSMaxAge)
	if err != nil {
		return nil, err
	}
	s.policy = policy
	return s, nil
}

// HostNames returns the names clients look up for the documents, for the
// ACME allow-list and the check-config warning: autoconfig.D and
// autodiscover.D for every domain, and mta-sts.D when a policy is served.
func (s *Server) HostNames() []string {
	var out []string
	for _, d := range s.cfg.Domains {
		out = append(out, PrefixAutoconfig+d, PrefixAutodiscover+d)
		if s.policy != "" {
			out = append(out, PrefixMTASTS+d)
		}
	}
	return out
}

// outgoing returns the submission endpoints, implicit TLS first (RFC 8314
// §3.3 prefers it), then STARTTLS, then the last resorts, otherwise in the
// order configured.
func (s *Server) outgoing() []Endpoint {
	var tlsFirst, rest, last []Endpoint
	for _, e := range s.cfg.Submission {
		switch {
		case e.LastResort:
			last = append(last, e)
		case e.ImplicitTLS:
			tlsFirst = append(tlsFirst, e)
		default:
			rest = append(rest, e)
		}
	}
	return append(append(tlsFirst, rest...), last...)
}

// username fills the login template for an address; without one (a
// Thunderbird request with no emailaddress) the template is returned for
// the client to fill.
func (s *Server) username(local, domain string) string {
	if local == "" {
		return s.cfg.Username
	}
	return strings.NewReplacer(
		"%EMAILADDRESS%", local+"@"+domain,
		"%EMAILLOCALPART%", local,
		"%EMAILDOMAIN%", domain,
	).Replace(s.cfg.Username)
}

// normalizeHost lower-cases a host name and drops a port and a trailing dot.
func normalizeHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

func derefEndpoint(e *Endpoint) []Endpoint {
	if e == nil {
		return nil
	}
	return []Endpoint{*e}
}
