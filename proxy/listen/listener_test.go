package listen

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

// FuzzParseListener is in advertised_test.go; its corpus also holds the
// --mynetworks values it once shared a fuzz target with.
