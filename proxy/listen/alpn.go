package listen

import "crypto/tls"

// ALPNSMTP is the ALPN protocol ID of SMTP over TLS (IANA's TLS ALPN
// registry), answered on the implicit-TLS listeners.
const ALPNSMTP = "smtp"

// StrictALPN returns a copy of conf that serves the application protocols
// protos and refuses every other (RFC 9325 §3.8, the ALPACA defence: a
// TLS connection meant for another service on the same certificate, an
// HTTPS request redirected here by an attacker, must not be served as SMTP).
// crypto/tls does the refusing: with NextProtos set, a ClientHello that
// offers ALPN values of which none is in protos fails the handshake with
// the no_application_protocol alert (RFC 7301 §3.2), while one that offers
// none is served, as mail clients that know no ALPN must be. (Its one
// exception, a client offering http/1.1 to a server offering h2 served as
// if it offered nothing, does not arise where h2 and http/1.1 are offered
// together.) conf's GetConfigForClient still applies: the ACME TLS-ALPN-01
// validation (acme-tls/1, certs.Manager) is answered as before.
func StrictALPN(conf *tls.Config, protos ...string) *tls.Config {
	c := conf.Clone()
	c.NextProtos = protos
	return c
}
