package certs

import (
	"bytes"
	"testing"
)

// FuzzACMECacheOpen feeds arbitrary values read from Redis (or the local
// copy) to open: it never panics and never accepts a value it did not
// seal itself for that name; and what it sealed opens under that name only.
func FuzzACMECacheOpen(f *testing.F) {
	s, err := newSealer(testCacheKey)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name string, value []byte) {
		if data, err := s.open(name, value); err == nil {
			t.Fatalf("open(%q, %x) accepted a value it never sealed: %q", name, value, data)
		}
		sealed, err := s.seal(name, value)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.open(name, sealed)
		if err != nil || !bytes.Equal(got, value) {
			t.Fatalf("round trip of %q under %q: %q, %v", value, name, got, err)
		}
		if _, err := s.open(name+"x", sealed); err == nil {
			t.Fatalf("a value sealed for %q opened under %q", name, name+"x")
		}
	})
}

// FuzzParseACMECacheKey: any file content either yields a 32-byte key or
// an error, never a panic, and an error never repeats the content.
func FuzzParseACMECacheKey(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseACMECacheKey(data)
		if err == nil && len(k) != ACMECacheKeySize {
			t.Fatalf("key of %d bytes from %q", len(k), data)
		}
		if err != nil && len(data) >= 8 && bytes.Contains([]byte(err.Error()), data) {
			t.Fatalf("the error repeats the key file: %v", err)
		}
	})
}
