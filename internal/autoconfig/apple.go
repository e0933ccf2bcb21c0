package autoconfig

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/smallstep/pkcs7"
)

// appleProfile builds the configuration profile for local@domain: one
// com.apple.mail.managed payload (Apple's "Mail" payload keys). Apple
// requires an incoming server; without --autoconfig-imap the incoming keys
// are left out and the device asks for them.
//
// Every text the device shows as the profile's or the account's name
// (display names, descriptions, organization) names the domain only: the
// local part is whatever the requester typed, and the profile is signed
// with the served certificate, so a title taken from it would be a
// "Verified" profile named "Verify-your-account-at-evil.example@…". The
// address stays in the account's own fields.
func (s *Server) appleProfile(local, domain string) ([]byte, error) {
	addr := local + "@" + domain
	login := s.username(local, domain)
	out := s.outgoing()[0] // the preferred one: implicit TLS if there is one
	id := reverseDomain(domain) + ".postern.email." + shortHash(addr)
	title := "Mail at " + domain
	account := plistDict{
		{"EmailAccountDescription", domain},
		{"EmailAccountType", "EmailTypeIMAP"},
		{"EmailAddress", addr},
	}
	if e := s.cfg.IMAP; e != nil {
		account = append(account,
			plistEntry{"IncomingMailServerAuthentication", "EmailAuthPassword"},
			plistEntry{"IncomingMailServerHostName", e.Host},
			plistEntry{"IncomingMailServerPortNumber", e.Port},
			plistEntry{"IncomingMailServerUseSSL", true},
			plistEntry{"IncomingMailServerUsername", login},
		)
	}
	account = append(account,
		plistEntry{"OutgoingMailServerAuthentication", "EmailAuthPassword"},
		plistEntry{"OutgoingMailServerHostName", out.Host},
		plistEntry{"OutgoingMailServerPortNumber", out.Port},
		// UseSSL is TLS in either form: Apple uses implicit TLS or
		// STARTTLS as the port needs.
		plistEntry{"OutgoingMailServerUseSSL", true},
		plistEntry{"OutgoingMailServerUsername", login},
		plistEntry{"OutgoingPasswordSameAsIncomingPassword", s.cfg.IMAP != nil},
		plistEntry{"PayloadDescription", "Mail account at " + domain},
		plistEntry{"PayloadDisplayName", title},
		plistEntry{"PayloadIdentifier", id + ".account"},
		plistEntry{"PayloadType", "com.apple.mail.managed"},
		plistEntry{"PayloadUUID", profileUUID(id + ".account")},
		plistEntry{"PayloadVersion", 1},
	)
	return encodePlist(plistDict{
		{"PayloadContent", []any{account}},
		{"PayloadDescription", "Sets up a mail account at " + domain},
		{"PayloadDisplayName", title},
		{"PayloadIdentifier", id},
		{"PayloadOrganization", domain},
		{"PayloadRemovalDisallowed", false},
		{"PayloadType", "Configuration"},
		{"PayloadUUID", profileUUID(id)},
		{"PayloadVersion", 1},
	})
}

// serveApple answers GET /apple/<address>.mobileconfig with the profile,
// signed (CMS SignedData, DER) with the certificate served for the request's
// name, so the device shows the profile as verified.
func (s *Server) serveApple(w http.ResponseWriter, r *http.Request, addr string) {
	local, domain, ok := s.addressDomain(w, r, addr)
	if !ok {
		return
	}
	profile, err := s.appleProfile(local, domain)
	if err == nil && s.cfg.Certificate != nil {
		name := s.hostname
		if r.TLS != nil && r.TLS.ServerName != "" {
			name = r.TLS.ServerName
		}
		profile, err = s.sign(name, profile)
	}
	if err != nil {
		s.cfg.Log.Error("autoconfig: building the Apple profile", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Disposition", `attachment; filename="`+domain+`.mobileconfig"`)
	writeBody(w, r, "application/x-apple-aspen-config", profile)
}

// sign wraps content in CMS SignedData (RFC 5652) signed by the key of the
// certificate served for serverName, with its chain.
func (s *Server) sign(serverName string, content []byte) ([]byte, error) {
	c, err := s.cfg.Certificate(serverName)
	if err != nil {
		return nil, fmt.Errorf("signing certificate for %q: %w", serverName, err)
	}
	if c == nil || len(c.Certificate) == 0 {
		return nil, errors.New("no signing certificate")
	}
	chain, err := parseChain(c)
	if err != nil {
		return nil, err
	}
	sd, err := pkcs7.NewSignedData(content)
	if err != nil {
		return nil, fmt.Errorf("cms: %w", err)
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSignerChain(chain[0], c.PrivateKey, chain[1:], pkcs7.SignerInfoConfig{}); err != nil {
		return nil, fmt.Errorf("cms: adding the signer: %w", err)
	}
	der, err := sd.Finish()
	if err != nil {
		return nil, fmt.Errorf("cms: %w", err)
	}
	return der, nil
}

func parseChain(c *tls.Certificate) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	for i, der := range c.Certificate {
		if i == 0 && c.Leaf != nil {
			chain = append(chain, c.Leaf)
			continue
		}
		x, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("parsing the signing chain: %w", err)
		}
		chain = append(chain, x)
	}
	return chain, nil
}

// reverseDomain turns example.org into org.example, the payload
// identifier convention.
func reverseDomain(d string) string {
	labels := strings.Split(d, ".")
	for i, j := 0, len(labels)-1; i < j; i, j = i+1, j-1 {
		labels[i], labels[j] = labels[j], labels[i]
	}
	return strings.Join(labels, ".")
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return fmt.Sprintf("%x", sum[:8])
}

// profileUUID derives a stable UUID (version 8, RFC 9562 §5.8) from the
// payload identifier, so downloading the profile again replaces the
// installed one instead of adding a second account.
func profileUUID(id string) string {
	sum := sha256.Sum256([]byte("postern profile " + id))
	sum[6] = sum[6]&0x0f | 0x80
	sum[8] = sum[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
}
