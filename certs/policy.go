package certs

import "crypto/tls"

// aeadSuites are the only TLS 1.2 cipher suites offered: forward secrecy
// (ECDHE) and authenticated encryption (GCM or ChaCha20-Poly1305). CBC suites
// (Lucky13, POODLE-style padding oracles) and static-RSA key exchange are left
// out. TLS 1.3 suites are all AEAD and not configurable in crypto/tls.
var aeadSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// ServerTLSConfig returns Postern's server TLS policy around get: TLS 1.2
// minimum (RFC 8996 deprecates 1.0 and 1.1), AEAD-only suites for TLS 1.2,
// X25519 preferred among the classical groups, session tickets on (mail
// clients reconnect often; resumption saves a full handshake).
func ServerTLSConfig(get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		GetCertificate: get,
		MinVersion:     tls.VersionTLS12,
		CipherSuites:   append([]uint16(nil), aeadSuites...),
		// X25519 is listed first, but since Go 1.24 crypto/tls ignores the
		// order and uses its own preference, which puts the hybrid
		// X25519MLKEM768 (X25519 plus ML-KEM) ahead of plain X25519. It is
		// listed so that setting this field does not switch post-quantum
		// key exchange off.
		CurvePreferences: []tls.CurveID{
			tls.X25519,
			tls.X25519MLKEM768,
			tls.CurveP256,
			tls.CurveP384,
		},
		SessionTicketsDisabled: false,
	}
}
