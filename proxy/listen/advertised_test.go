package listen

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

func TestParseListenerPublicPort(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Listener
		err  string
	}{
		{in: "tls=:465", want: Listener{Mode: ModeTLS, Addr: ":465"}},
		{in: "tls=:10465@465", want: Listener{Mode: ModeTLS, Addr: ":10465", PublicPort: 465}},
		{in: "starttls=[::1]:10587@587", want: Listener{Mode: ModeStartTLS, Addr: "[::1]:10587", PublicPort: 587}},
		{in: "tls+https=127.0.0.1:8443@443", want: Listener{Mode: ModeShared, Addr: "127.0.0.1:8443", PublicPort: 443}},
		{in: "tls=:465@0", err: "advertised port"},
		{in: "tls=:465@65536", err: "advertised port"},
		{in: "tls=:465@", err: "advertised port"},
		{in: "tls=:465@x", err: "advertised port"},
		{in: "tls=@465", err: "missing port"},
		{in: "imaps=:993", err: "mode must be"},
	} {
		got, err := ParseListener(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

// FuzzParseListener: whatever --listen says, ParseListener either refuses
// it or returns a mode it knows, an address net can split, and a public
// port that is 0 or a port.
func FuzzParseListener(f *testing.F) {
	for _, s := range []string{"tls=:465", "starttls=[::]:587@587", "tls+https=:443", "tls=:1@65535", "tls=:1@@2", "=", "tls="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseListener(s)
		if err != nil {
			return
		}
		if l.Mode != ModeStartTLS && l.Mode != ModeTLS && l.Mode != ModeShared {
			t.Fatalf("%q: mode %q", s, l.Mode)
		}
		if _, _, err := net.SplitHostPort(l.Addr); err != nil || strings.Contains(l.Addr, "@") {
			t.Fatalf("%q: address %q (%v)", s, l.Addr, err)
		}
		if l.PublicPort < 0 || l.PublicPort > 65535 {
			t.Fatalf("%q: public port %d", s, l.PublicPort)
		}
		if l.PublicPort != 0 && !strings.HasSuffix(s, "@"+strconv.Itoa(l.PublicPort)) && !strings.Contains(s, "@") {
			t.Fatalf("%q: public port %d from nowhere", s, l.PublicPort)
		}
	})
}
