package smtp_test

import (
	"io"
	"testing"
)

// RFC 4954 section 4: "If the client's response is not valid base64, the
// server MUST reject it with 501." This holds for the initial response and
// for a response to a 334 challenge.
func TestServerAuthInvalidBase64(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
	}{
		{"initial response", []string{"AUTH PLAIN !!!"}},
		{"after 334", []string{"AUTH PLAIN", "!!!"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, s, c, scanner, _ := testServerEhlo(t)
			defer s.Close()
			defer c.Close()
			for i, line := range tc.lines {
				io.WriteString(c, line+"\r\n")
				scanner.Scan()
				if i < len(tc.lines)-1 && scanner.Text() != "334 " {
					t.Fatalf("reply to %q: %q, want 334", line, scanner.Text())
				}
			}
			if got, want := scanner.Text(), "501 5.5.2 Invalid base64 data"; got != want {
				t.Fatalf("reply %q, want %q", got, want)
			}
		})
	}
}
