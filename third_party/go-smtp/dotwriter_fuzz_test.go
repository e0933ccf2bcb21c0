package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand"
	"net/textproto"
	"strings"
	"testing"
)

// writeDot writes data through w in random chunks (the same for any seed)
// and closes it, returning what reached out and each Write's result.
func writeDot(data []byte, seed int64, w io.WriteCloser) (ns []int, errs []error, closeErr error) {
	rng := rand.New(rand.NewSource(seed))
	for len(data) > 0 {
		var k int
		switch rng.Intn(3) {
		case 0:
			k = rng.Intn(3)
		case 1:
			k = rng.Intn(100)
		default:
			k = rng.Intn(len(data) + 1)
		}
		if k > len(data) {
			k = len(data)
		}
		n, err := w.Write(data[:k])
		ns, errs = append(ns, n), append(errs, err)
		data = data[k:]
	}
	return ns, errs, w.Close()
}

func FuzzDotWriter(f *testing.F) {
	for _, s := range []string{
		"", ".", "\r", "\n", "\r\n", ".\r\n", "a", "a\r", "a\n", "a\r\n",
		"From: x\r\n\r\nLine 1\n.Leading dot\r\n..two\r\nGoodbye.",
		"a\r\r\n.b\r\r\r\n.\n.\r.\r\n", "\r\r\r\r\n\n\n..\r\n",
	} {
		f.Add([]byte(s), int64(1), uint16(16))
		f.Add([]byte(s), int64(2), uint16(4096))
	}
	f.Fuzz(func(t *testing.T, data []byte, seed int64, bufSize uint16) {
		bs := 16 + int(bufSize)%8192
		var want, got bytes.Buffer
		tw := textproto.NewWriter(bufio.NewWriterSize(&want, bs))
		wantN, wantErrs, wantClose := writeDot(data, seed, tw.DotWriter())
		gotN, gotErrs, gotClose := writeDot(data, seed, newDotWriter(nil, bufio.NewWriterSize(&got, bs)))
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("wrote %q, textproto %q", got.Bytes(), want.Bytes())
		}
		for i := range wantN {
			if gotN[i] != wantN[i] || gotErrs[i] != wantErrs[i] {
				t.Fatalf("write %d: %d, %v; textproto %d, %v", i, gotN[i], gotErrs[i], wantN[i], wantErrs[i])
			}
		}
		if gotClose != wantClose {
			t.Fatalf("close: %v; textproto %v", gotClose, wantClose)
		}

		// When the connection fails, the error is reported and what was
		// sent is a prefix of the right output.
		fw := &failWriter{left: int(seed&0xffff) % (want.Len() + 1)}
		_, errs, closeErr := writeDot(data, seed, newDotWriter(nil, bufio.NewWriterSize(fw, bs)))
		if !bytes.HasPrefix(want.Bytes(), fw.got.Bytes()) {
			t.Fatalf("sent %q before failing, not a prefix of %q", fw.got.Bytes(), want.Bytes())
		}
		if fw.left < 0 && !errors.Is(errors.Join(append(errs, closeErr)...), errFailWriter) {
			t.Fatalf("connection failure not reported")
		}
	})
}

var errFailWriter = errors.New("connection gone")

// failWriter accepts left bytes, then fails (partially writing the write
// that crosses the limit).
type failWriter struct {
	got  bytes.Buffer
	left int
}

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		n := w.left
		if n < 0 {
			n = 0
		}
		w.got.Write(p[:n])
		w.left = -1
		return n, errFailWriter
	}
	w.left -= len(p)
	return w.got.Write(p)
}

// TestClientDebugAndDotClose checks that DebugWriter set after NewClient
// sees both directions, and that a command sent while a DATA writer is open
// ends the data first, as textproto's DotWriter did.
func TestClientDebugAndDotClose(t *testing.T) {
	server := strings.Join([]string{
		"220 hello",
		"250 ok", // EHLO
		"250 ok", // MAIL
		"250 ok", // RCPT
		"354 go",
		"250 data ok",
		"250 reset", // RSET
		"",
	}, "\r\n")
	var out bytes.Buffer
	var fake faker
	fake.ReadWriter = struct {
		io.Reader
		io.Writer
	}{strings.NewReader(server), &out}
	c := NewClient(fake)
	var debug bytes.Buffer
	c.DebugWriter = &debug
	if err := c.Hello("localhost"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("a@example.org", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("b@example.org", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, ".dot\nline"); err != nil {
		t.Fatal(err)
	}
	// No Close: the next command writes the end of data itself, and its
	// reply is the one to the final dot.
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	wantOut := "EHLO localhost\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n" +
		"..dot\r\nline\r\n.\r\nRSET\r\n"
	if out.String() != wantOut {
		t.Fatalf("sent %q, want %q", out.String(), wantOut)
	}
	for _, s := range []string{"220 hello\r\n", "354 go\r\n", "..dot\r\nline\r\n.\r\n", "RSET\r\n"} {
		if !strings.Contains(debug.String(), s) {
			t.Errorf("debug output %q lacks %q", debug.String(), s)
		}
	}
}
