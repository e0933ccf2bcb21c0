package smtp_test

// A panic in the TLS handshake (in a GetCertificate callback, say) ends the
// connection, never the process: under STARTTLS the command handler's
// recover sees it, under implicit TLS handleConn's own.

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// A panic in GetCertificate during STARTTLS is the command's panic: 421,
// the connection ends, the server goes on.
func TestServerGetCertificatePanicStartTLS(t *testing.T) {
	_, addr := echoServer(t, echoBackend{}, func(s *smtp.Server) {
		s.TLSConfig = &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			panic("boom in GetCertificate")
		}}
	})
	for i := 0; i < 3; i++ {
		c, br := dialGreeted(t, addr)
		io.WriteString(c, "STARTTLS\r\n")
		finalReplies(br, 1)
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
		if err := tc.Handshake(); err == nil {
			t.Fatal("handshake succeeded")
		}
		// The 421 goes out in clear text; the TLS client reads it as a
		// record. What matters: the connection ends, the next one works.
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Errorf("after the panic the connection did not end: %v", err)
		}
	}
}

// A panic in GetCertificate during an implicit-TLS handshake must not take
// the whole server (process) down. Run in a child process.
func TestServerGetCertificatePanicImplicitTLS(t *testing.T) {
	if os.Getenv("SMTP_TEST_CHILD") == "1" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := smtp.NewServer(echoBackend{})
		s.Domain = "localhost"
		s.ErrorLog = nopLogger{}
		conf := &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			panic("boom in GetCertificate")
		}}
		go s.Serve(tls.NewListener(l, conf))
		c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			c.Close()
		}
		time.Sleep(500 * time.Millisecond)
		fmt.Println("SERVER-SURVIVED")
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestServerGetCertificatePanicImplicitTLS$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SMTP_TEST_CHILD=1")
	out, err := cmd.CombinedOutput()
	if !strings.Contains(string(out), "SERVER-SURVIVED") {
		i := strings.Index(string(out), "goroutine")
		if i < 0 || i > 2000 {
			i = len(out)
			if i > 2000 {
				i = 2000
			}
		}
		t.Errorf("the process died (%v):\n%s", err, out[:i])
	}
}
