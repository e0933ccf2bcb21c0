package smtp_test

// Tests of Postern's patches 8 and 9 (PATCHES.md): a ConnectBackend's error
// replaces the greeting, and a read failing with an *SMTPError ends the
// connection with that reply.

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// refusingBackend refuses every connection with err.
type refusingBackend struct {
	backend
	err error
}

func (b *refusingBackend) Connect(*smtp.Conn) error { return b.err }

// readAll returns everything the server sends until it closes.
func readAll(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading until the server closes: %v (got %q)", err, b)
	}
	return string(b)
}

func serveRefusing(t *testing.T, err error, tlsConfig *tls.Config) net.Listener {
	t.Helper()
	l, lerr := net.Listen("tcp", "127.0.0.1:0")
	if lerr != nil {
		t.Fatal(lerr)
	}
	s := smtp.NewServer(&refusingBackend{err: err})
	s.Domain = "localhost"
	if tlsConfig != nil {
		l = tls.NewListener(l, tlsConfig)
	}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return l
}

func TestServer_connectRefused(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{&smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many connections"},
			"421 4.7.0 Too many connections\r\n"},
		{errors.New("go away"), "421 4.0.0 go away\r\n"},
	} {
		l := serveRefusing(t, tt.err, nil)
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, c); got != tt.want {
			t.Errorf("got %q, want %q and the connection closed", got, tt.want)
		}
		c.Close()
	}
}

// On an implicit-TLS listener the refusal is the first thing said over TLS.
func TestServer_connectRefusedTLS(t *testing.T) {
	l := serveRefusing(t, &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many connections"},
		&tls.Config{Certificates: []tls.Certificate{selfSigned(t)}})
	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, want := readAll(t, c), "421 4.7.0 Too many connections\r\n"; got != want {
		t.Errorf("got %q, want %q and the connection closed", got, want)
	}
}

// expiringListener's connections fail every read that carries "EXPIRE"
// with the given reply, as Postern's do when the login deadline passes.
type expiringListener struct {
	net.Listener
	reply *smtp.SMTPError
}

func (l expiringListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	return expiringConn{c, l.reply}, err
}

type expiringConn struct {
	net.Conn
	reply *smtp.SMTPError
}

func (c expiringConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if bytes.Contains(b[:n], []byte("EXPIRE")) {
		return 0, c.reply
	}
	return n, err
}

func TestServer_readErrorReply(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := smtp.NewServer(new(backend))
	s.Domain = "localhost"
	go s.Serve(expiringListener{l, &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Login timeout"}})
	defer s.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	var got strings.Builder
	for _, cmd := range []string{"NOOP\r\n", "EXPIRE\r\n"} {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		got.WriteString(line)
		io.WriteString(c, cmd)
	}
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("reading until the server closes: %v", err)
	}
	got.Write(rest)
	want := "220 localhost ESMTP Service Ready\r\n250 2.0.0 I have successfully done nothing\r\n421 4.7.0 Login timeout\r\n"
	if got.String() != want {
		t.Errorf("got %q, want %q and the connection closed", got.String(), want)
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
