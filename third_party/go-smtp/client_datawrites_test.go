package smtp

import (
	"io"
	"strings"
	"testing"
)

// TestClientDataWrites: the message and its final dot leave in one write
// when they fit in the data writer's 64 KiB buffer, however the caller cuts
// its Writes, and a longer message in 64 KiB writes (dotwriter.go): not in
// pieces the size of the client's 4 KiB bufio.Writer.
func TestClientDataWrites(t *testing.T) {
	line := strings.Repeat("x", 76) + "\r\n"
	for _, size := range []int{100, 4 << 10, 6 << 10, 16 << 10, 60 << 10, 200 << 10} {
		// A line that starts with a dot is doubled: a run of its own.
		body := "Received: from a by b; Tue, 1 Dec 2026 12:00:00 +0000\r\n\r\n.dot\r\n" +
			strings.Repeat(line, size/len(line))
		var log writeLog
		c := NewClient(faker{ReadWriter: struct {
			io.Reader
			io.Writer
		}{strings.NewReader("354 go ahead\r\n250 queued\r\n"), &log}})
		c.didHello = true
		c.ext = map[string]string{}
		c.rcpts = []string{"b@x.test"}
		w, err := c.Data()
		if err != nil {
			t.Fatalf("%d bytes: DATA: %v", size, err)
		}
		for rest := body; rest != ""; {
			n := len(rest)
			if n > 1000 {
				n = 1000
			}
			if _, err := io.WriteString(w, rest[:n]); err != nil {
				t.Fatalf("%d bytes: write: %v", size, err)
			}
			rest = rest[n:]
		}
		if err := w.Close(); err != nil {
			t.Fatalf("%d bytes: close: %v", size, err)
		}
		if len(log.writes) == 0 || log.writes[0] != "DATA\r\n" {
			t.Fatalf("%d bytes: writes start %.20q, want DATA", size, log.writes)
		}
		sent := strings.Join(log.writes[1:], "")
		if want := strings.Replace(body, "\n.dot", "\n..dot", 1) + ".\r\n"; sent != want {
			t.Fatalf("%d bytes: sent %d bytes, want %d (stuffed, final dot)", size, len(sent), len(want))
		}
		if got, want := len(log.writes)-1, (len(sent)+dataWriterSize-1)/dataWriterSize; got != want {
			t.Errorf("%d bytes: the message left in %d writes, want %d (of at most %d bytes)", size, got, want, dataWriterSize)
		}
	}
}

// writeLog records each Write call separately.
type writeLog struct{ writes []string }

func (w *writeLog) Write(b []byte) (int, error) {
	w.writes = append(w.writes, string(b))
	return len(b), nil
}
