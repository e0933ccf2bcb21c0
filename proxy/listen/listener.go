package listen

import (
	"fmt"
	"net"
	"strings"
)

// ListenMode is how a listener starts TLS.
type ListenMode string

const (
	ModeStartTLS ListenMode = "starttls" // plain, upgrade with STARTTLS (587, 2525)
	ModeTLS      ListenMode = "tls"      // implicit TLS, RFC 8314 (465)
	// ModeShared is submission over implicit TLS and HTTPS on one port
	// (--listen tls+https=:443), for networks that let nothing but 443
	// out: one TLS handshake, then the connection goes to SMTP or to HTTP
	// (Shared).
	ModeShared ListenMode = "tls+https"
)

// Listener is one --listen MODE=ADDR[@PUBLICPORT].
type Listener struct {
	Mode ListenMode
	Addr string
	// PublicPort is the port clients use when it is not Addr's (see
	// SplitPublicPort); 0: Addr's.
	PublicPort int
}

// ParseListener parses "starttls=:587", "tls=127.0.0.1:465" or, with the
// port clients use, "tls=:10465@465".
func ParseListener(s string) (Listener, error) {
	mode, addr, ok := strings.Cut(s, "=")
	if !ok || addr == "" {
		return Listener{}, fmt.Errorf("listen %q: want MODE=ADDR, e.g. starttls=:587", s)
	}
	switch m := ListenMode(strings.ToLower(mode)); m {
	case ModeStartTLS, ModeTLS, ModeShared:
		addr, public, err := SplitPublicPort(addr)
		if err != nil {
			return Listener{}, fmt.Errorf("listen %q: %w", s, err)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return Listener{}, fmt.Errorf("listen %q: %w", s, err)
		}
		return Listener{Mode: m, Addr: addr, PublicPort: public}, nil
	}
	return Listener{}, fmt.Errorf("listen %q: mode must be starttls or tls, tls+https or https", s)
}

// Name is the name of a listener of mode bound at addr in logs and in the
// metrics' listener label: the mode and the port, e.g. "starttls:587".
func Name(mode ListenMode, addr net.Addr) string {
	return string(mode) + ":" + portOf(addr)
}

func portOf(a net.Addr) string {
	_, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return port
}
