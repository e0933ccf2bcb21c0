package proxy

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestMessageCopierGuards(t *testing.T) {
	tests := []struct {
		name, in string
		wantErr  error
	}{
		{"clean", "Subject: x\r\n\r\nbody\r\n", nil},
		{"bare LF smuggling", "Subject: x\r\n\r\nbody\n.\nMAIL FROM:<x>\r\n", errBareNewline},
		{"CRLF dot LF", "Subject: x\r\n\r\nbody\r\n.\nRCPT\r\n", errBareNewline},
		{"LF dot CRLF", "Subject: x\r\n\r\nbody\n.\r\nRCPT\r\n", errBareNewline},
		{"CR dot CRLF", "Subject: x\r\n\r\nbody\r.\r\nRCPT\r\n", errBareNewline},
		{"bare CR inside", "Subject: x\r\n\r\na\rb\r\n", errBareNewline},
		{"NUL", "Subject: x\r\n\r\na\x00b\r\n", errNULInData},
		{"long line", "Subject: x\r\n\r\n" + strings.Repeat("a", maxMessageLine) + "\r\n", errLongLine},
		{"longest allowed line", "Subject: x\r\n\r\n" + strings.Repeat("a", maxMessageLine-2) + "\r\n", nil},
		{"very long line", "Subject: x\r\n\r\n" + strings.Repeat("a", 100000) + "\r\n", errLongLine},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			mc := messageCopier{}
			_, err := mc.copy(&out, strings.NewReader(tt.in))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && out.String() != tt.in {
				t.Fatalf("copied %q, want %q", out.String(), tt.in)
			}
		})
	}
}

func TestMessageCopierStripsHeaders(t *testing.T) {
	in := "From: a@example.org\r\nX-Originating-IP: [192.0.2.7]\r\n\tcontinued 192.0.2.7\r\n" +
		"x-originating-ip:192.0.2.8\r\nSubject: hi\r\n\r\nX-Originating-IP: in the body stays\r\n"
	want := "Received: test\r\nFrom: a@example.org\r\nSubject: hi\r\n\r\nX-Originating-IP: in the body stays\r\n"
	var out bytes.Buffer
	mc := messageCopier{received: []byte("Received: test\r\n"), strip: stripAnonymous}
	n, err := mc.copy(&out, strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != want {
		t.Fatalf("got %q\nwant %q", out.String(), want)
	}
	if n != int64(len(in)) {
		t.Fatalf("counted %d bytes, want %d", n, len(in))
	}
}

type failingWriter struct{ after int }

func (w *failingWriter) Write(b []byte) (int, error) {
	if w.after -= len(b); w.after < 0 {
		return 0, errors.New("upstream gone")
	}
	return len(b), nil
}

func TestMessageCopierUpstreamFailure(t *testing.T) {
	mc := messageCopier{}
	_, err := mc.copy(&failingWriter{after: 10}, strings.NewReader("Subject: x\r\n\r\nbody\r\n"))
	var uw *upstreamWriteError
	if !errors.As(err, &uw) {
		t.Fatalf("err = %v, want an upstreamWriteError", err)
	}
}

// FuzzMessageCopier checks that whatever the client sends, what reaches the
// upstream has only CRLF line endings and no NUL, so no end-of-data can be
// smuggled, and the header stripping never panics.
func FuzzMessageCopier(f *testing.F) {
	f.Add([]byte("Subject: x\r\n\r\nbody\r\n"))
	f.Add([]byte("X-Originating-IP: 1\r\n x\r\n\r\n\n.\n"))
	f.Add([]byte("a\r.\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		mc := messageCopier{strip: stripAnonymous}
		if _, err := mc.copy(&out, bytes.NewReader(in)); err != nil {
			return
		}
		b := out.Bytes()
		for i, c := range b {
			switch c {
			case 0:
				t.Fatalf("NUL passed at %d", i)
			case '\n':
				if i == 0 || b[i-1] != '\r' {
					t.Fatalf("bare LF passed at %d: %q", i, b)
				}
			case '\r':
				if i+1 < len(b) && b[i+1] != '\n' {
					t.Fatalf("bare CR passed at %d: %q", i, b)
				}
			}
		}
	})
}

// TestMessageCopierReuse checks that a line reader coming back from a failed
// message (with unread bytes in it) does not leak into the next message.
func TestMessageCopierReuse(t *testing.T) {
	for range 20 {
		mc := messageCopier{}
		bad := "Subject: x\r\n\r\n" + strings.Repeat("a", 3*maxMessageLine) + "\r\nleft over\r\n"
		if _, err := mc.copy(io.Discard, strings.NewReader(bad)); !errors.Is(err, errLongLine) {
			t.Fatalf("err = %v, want errLongLine", err)
		}
		var out bytes.Buffer
		n, err := mc.copy(&out, strings.NewReader(simpleBody))
		if err != nil || out.String() != simpleBody || n != int64(len(simpleBody)) {
			t.Fatalf("copied %q (%d bytes), %v; want %q", out.String(), n, err, simpleBody)
		}
	}
}

// BenchmarkMessageCopier is one 4 KiB message (W1's size) per iteration:
// allocations per message show whether the line reader is reused.
func BenchmarkMessageCopier(b *testing.B) {
	msg := "Subject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("x", 76)+"\r\n", 4096/78)
	src := strings.NewReader(msg)
	mc := messageCopier{received: []byte("Received: bench\r\n")}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for range b.N {
		src.Reset(msg)
		if _, err := mc.copy(io.Discard, src); err != nil {
			b.Fatal(err)
		}
	}
}
