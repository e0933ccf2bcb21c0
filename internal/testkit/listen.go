package testkit

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// Listening reports whether a TCP socket in the LISTEN state is bound to
// addr ("127.0.0.1:PORT"), read from /proc/net/tcp. Unlike a probe
// connection it does not touch the server, so a test that counts the
// connections a server accepted can still use it.
func Listening(t testing.TB, addr string) bool {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("Listening(%q): %v", addr, err)
	}
	ip := net.ParseIP(host).To4()
	if ip == nil {
		t.Fatalf("Listening(%q): not an IPv4 address", addr)
	}
	var p int
	if _, err := fmt.Sscan(port, &p); err != nil {
		t.Fatalf("Listening(%q): %v", addr, err)
	}
	// /proc/net/tcp writes the address as the 32-bit word in host (little
	// endian) byte order, then the port, both in hex: 0100007F:1F90.
	want := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], p)
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Fatalf("reading the socket table: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st ...; st 0A is TCP_LISTEN.
		fields := strings.Fields(sc.Text())
		if len(fields) > 3 && fields[1] == want && fields[3] == "0A" {
			return true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading the socket table: %v", err)
	}
	return false
}

// WaitNotListening waits until nothing listens on addr any more (a server
// closed its listener), or fails the test after timeout.
func WaitNotListening(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for Listening(t, addr) {
		if time.Now().After(deadline) {
			t.Fatalf("%s still listening after %v", addr, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
