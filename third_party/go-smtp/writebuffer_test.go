package smtp

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// Server.WriteBufferSize sets the size of the reply buffer; a reply longer
// than the buffer still arrives whole.
func TestServerWriteBufferSize(t *testing.T) {
	for _, tc := range []struct{ size, want int }{{0, 4096}, {16, 16}, {1024, 1024}} {
		s := NewServer(nil)
		s.WriteBufferSize = tc.size
		server, client := net.Pipe()
		c := newConn(server, s)
		if got := c.text.W.Size(); got != tc.want {
			t.Errorf("WriteBufferSize %d: reply buffer of %d bytes, want %d", tc.size, got, tc.want)
		}
		long := strings.Repeat("x", 100)
		go c.writeResponse(250, NoEnhancedCode, long)
		client.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(client).ReadString('\n')
		if want := "250 " + long + "\r\n"; line != want || err != nil {
			t.Errorf("WriteBufferSize %d: read %q, %v; want %q", tc.size, line, err, want)
		}
		server.Close()
		client.Close()
	}
}
