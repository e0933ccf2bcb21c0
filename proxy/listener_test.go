package proxy

import "testing"

func TestParseListener(t *testing.T) {
	for _, s := range []string{"starttls=:587", "TLS=127.0.0.1:465"} {
		if _, err := ParseListener(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	for _, s := range []string{"smtp=:25", ":587", "tls=587"} {
		if _, err := ParseListener(s); err == nil {
			t.Errorf("%s accepted", s)
		}
	}
}

// FuzzParseListener: --listen never panics (the seeds are --mynetworks
// values, which it once shared a fuzz target with).
func FuzzParseListener(f *testing.F) {
	f.Add("starttls=:587")
	f.Add("tls=[::1]:465")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = ParseListener(s)
	})
}
