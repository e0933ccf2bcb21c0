package smtp

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"strings"
	"testing"
)

// StartTLS after Hello sends the chosen name before STARTTLS (not the
// "localhost" of NewClientStartTLS), and refuses a server without it.
func TestClientStartTLSAfterHello(t *testing.T) {
	for _, tc := range []struct {
		name, server, wantCmds string
		wantErr                bool
	}{
		{"offered", "220 mx\r\n250-mx\r\n250 STARTTLS\r\n220 2.0.0 go ahead\r\n",
			"EHLO mail.example.org\r\nSTARTTLS\r\n", false},
		{"not offered", "220 mx\r\n250-mx\r\n250 8BITMIME\r\n",
			"EHLO mail.example.org\r\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cmdbuf bytes.Buffer
			w := bufio.NewWriter(&cmdbuf)
			fake := faker{ReadWriter: bufio.NewReadWriter(bufio.NewReader(strings.NewReader(tc.server)), w)}
			c := NewClient(fake)
			if err := c.Hello("mail.example.org"); err != nil {
				t.Fatal(err)
			}
			err := c.StartTLS(&tls.Config{ServerName: "mx.example.org"})
			if (err != nil) != tc.wantErr {
				t.Fatalf("StartTLS: %v, want error %v", err, tc.wantErr)
			}
			w.Flush()
			if got := cmdbuf.String(); got != tc.wantCmds {
				t.Fatalf("sent %q, want %q", got, tc.wantCmds)
			}
			if !tc.wantErr {
				if _, ok := c.conn.(*tls.Conn); !ok {
					t.Fatal("the connection is not under TLS after StartTLS")
				}
				if c.didHello {
					t.Fatal("no new EHLO after STARTTLS")
				}
			}
		})
	}
}
