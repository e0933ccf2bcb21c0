package main

import (
	"crypto/tls"
	"slices"
	"strings"
	"testing"
)

// fakeTLS is a client whose handshake negotiated id (for the recorder).
type fakeTLS struct{ id tls.CurveID }

func (f fakeTLS) tlsGroup() (tls.CurveID, bool) { return f.id, true }
func (fakeTLS) send([]byte) error               { return nil }
func (fakeTLS) quit() error                     { return nil }
func (fakeTLS) close()                          {}

func TestParseTLSGroups(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []tls.CurveID
	}{
		{"", nil},
		{"x25519", []tls.CurveID{tls.X25519}},
		{"x25519mlkem768,x25519", []tls.CurveID{tls.X25519MLKEM768, tls.X25519}},
		{" X25519MLKEM768 , X25519 ", []tls.CurveID{tls.X25519MLKEM768, tls.X25519}},
		{"secp256r1,CurveP384,secp521r1", []tls.CurveID{tls.CurveP256, tls.CurveP384, tls.CurveP521}},
		{"SecP256r1MLKEM768,secp384r1mlkem1024", []tls.CurveID{tls.SecP256r1MLKEM768, tls.SecP384r1MLKEM1024}},
	} {
		got, err := parseTLSGroups(c.in)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("parseTLSGroups(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"x448", "x25519,", "x25519,,secp256r1", "x25519,X25519", "ffdhe2048", "25519", "x25519 mlkem768"} {
		if got, err := parseTLSGroups(in); err == nil || !strings.Contains(err.Error(), "--tls-groups") {
			t.Errorf("parseTLSGroups(%q) = %v, %v; want a --tls-groups error", in, got, err)
		}
	}
}

func TestDescribeGroups(t *testing.T) {
	for _, c := range []struct {
		count map[tls.CurveID]int
		want  string
	}{
		{map[tls.CurveID]int{tls.X25519MLKEM768: 7}, "X25519MLKEM768"},
		{map[tls.CurveID]int{tls.X25519: 1, tls.X25519MLKEM768: 3}, "X25519MLKEM768 ×3, X25519 ×1"},
		{map[tls.CurveID]int{0: 2}, "none"},
	} {
		if got := describeGroups(c.count); got != c.want {
			t.Errorf("describeGroups(%v) = %q, want %q", c.count, got, c.want)
		}
	}
	if got := groupNames([]tls.CurveID{tls.X25519MLKEM768, tls.X25519}); got != "X25519MLKEM768,X25519" {
		t.Errorf("groupNames = %q", got)
	}
}
