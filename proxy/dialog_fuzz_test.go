package proxy

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"testing"
	"time"

	"github.com/postern/postern/proxy/proxytest"
)

// FuzzDialog replays fuzz bytes as the client's side of an authenticated
// session over implicit TLS (as chasquid's FuzzConnection does) and checks
// that the server never panics (go-smtp would answer "421 4.0.0 Internal
// server error") and that nothing with a bare CR, bare LF or NUL ever
// reaches the upstream.
func FuzzDialog(f *testing.F) {
	f.Add([]byte("MAIL FROM:<alice@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n"))
	f.Add([]byte("MAIL FROM:<alice@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nhi\n.\nMAIL FROM:<x>\r\n.\r\n"))
	f.Add([]byte("RSET\r\nNOOP\r\nAUTH LOGIN\r\n*\r\nBDAT 5 LAST\r\nhello"))
	f.Add([]byte("MAIL FROM:<alice@example.test> SIZE=10\r\nRCPT TO:<b@example.test>\r\nBDAT 4\r\na\nb\rBDAT 0 LAST\r\n"))
	f.Add([]byte("EHLO again\r\nSTARTTLS\r\nVRFY x\r\nHELP\r\n\x00\r\n"))

	env := startServer(f, proxytest.UpstreamOptions{})
	f.Fuzz(func(t *testing.T, dialog []byte) {
		before := len(env.up.Messages())
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", env.tls,
			&tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ir := base64.StdEncoding.EncodeToString([]byte("\x00" + testUser + "\x00" + testPass))
		prefix := "EHLO fuzz.test\r\nAUTH PLAIN " + ir + "\r\n"
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		go func() {
			conn.Write([]byte(prefix))
			conn.Write(dialog)
			conn.CloseWrite()
		}()
		replies, _ := io.ReadAll(conn)
		if bytes.Contains(replies, []byte("Internal server error")) {
			t.Fatalf("server panicked on %q:\n%s", dialog, replies)
		}
		for _, m := range env.up.Messages()[before:] {
			for i, c := range m.Data {
				if c == 0 || (c == '\n' && (i == 0 || m.Data[i-1] != '\r')) ||
					(c == '\r' && (i+1 == len(m.Data) || m.Data[i+1] != '\n')) {
					t.Fatalf("upstream got a bare CR/LF or NUL at %d from %q:\n%q", i, dialog, m.Data)
				}
			}
		}
	})
}
