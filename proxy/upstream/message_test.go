package upstream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
)

func TestMessageCopierGuards(t *testing.T) {
	long := strings.Repeat("a", 100000)
	tests := []struct {
		name, in string
		bdat     bool   // the copier reads a BDAT message (no dot-stuffing)
		want     string // what reaches the upstream when accepted; "" means in
		wantErr  error
	}{
		{name: "clean", in: "Subject: x\r\n\r\nbody\r\n"},
		{name: "bare LF smuggling", in: "Subject: x\r\n\r\nbody\n.\nMAIL FROM:<x>\r\n", wantErr: ErrDotBareLF},
		// "\r\n.\n" reaches the copier as "\r\n\n" (the DATA reader
		// takes the dot for stuffing); "\r\n..\n" as "\r\n.\n".
		{name: "CRLF dot LF", in: "Subject: x\r\n\r\nbody\r\n\nRCPT\r\n", wantErr: ErrDotBareLF},
		{name: "CRLF stuffed dot LF", in: "Subject: x\r\n\r\nbody\r\n.\nRCPT\r\n", want: "Subject: x\r\n\r\nbody\r\n.\r\nRCPT\r\n"},
		{name: "LF dot CRLF", in: "Subject: x\r\n\r\nbody\n.\r\nRCPT\r\n", wantErr: ErrDotBareLF},
		{name: "CR dot CRLF", in: "Subject: x\r\n\r\nbody\r.\r\nRCPT\r\n", wantErr: ErrBareNewline},
		{name: "CR dot CR", in: "Subject: x\r\n\r\nbody\r.\rRCPT\r\n", wantErr: ErrBareNewline},
		{name: "bare CR inside", in: "Subject: x\r\n\r\na\rb\r\n", wantErr: ErrBareNewline},
		{name: "CR CR LF", in: "Subject: x\r\n\r\na\r\r\n", wantErr: ErrBareNewline},
		{name: "bare CR at the end (BDAT)", in: "Subject: x\r\n\r\na\r", bdat: true, wantErr: ErrBareNewline},
		{name: "NUL", in: "Subject: x\r\n\r\na\x00b\r\n", wantErr: ErrNULInData},
		{name: "NUL in a bare-LF line", in: "Subject: x\n\na\x00b\n\r\n", wantErr: ErrNULInData},
		{name: "empty bare-LF line after CRLF", in: "Subject: x\r\n\nbody\r\n", wantErr: ErrDotBareLF},
		{name: "message starting with a bare LF", in: "\nbody\r\n", wantErr: ErrDotBareLF},

		// Bare LF line ends are normalised (Postfix's
		// smtpd_forbid_bare_newline = normalize).
		{name: "curl -T", in: "Subject: t\n\nhello\n", want: "Subject: t\r\n\r\nhello\r\n"},
		{name: "smtplib bytes", in: "Subject: t\n\nhello\n\r\n", want: "Subject: t\r\n\r\nhello\r\n\r\n"},
		{name: "mixed", in: "A: 1\r\nB: 2\n\r\nx\ny\r\n", want: "A: 1\r\nB: 2\r\n\r\nx\r\ny\r\n"},
		// After a bare LF the DATA reader left the stuffing dot: it goes.
		{name: "stuffed dot after LF", in: "S: t\n\n..x\n.y\r\n", want: "S: t\r\n\r\n.x\r\ny\r\n"},
		{name: "stuffed dot line after LF", in: "S: t\n\nhi\n..\n", want: "S: t\r\n\r\nhi\r\n.\r\n"},
		// ...but not after CRLF, where the DATA reader took it already.
		{name: "dot after CRLF", in: "S: t\r\n\r\n.x\r\n", want: "S: t\r\n\r\n.x\r\n"},
		// BDAT is not dot-stuffed: dots are data, lines of a dot too.
		{name: "BDAT dots after LF", in: "S: t\n\n..x\n.\n", bdat: true, want: "S: t\r\n\r\n..x\r\n.\r\n"},
		{name: "BDAT unterminated LF message", in: "S: t\n\nx", bdat: true, want: "S: t\r\n\r\nx"},

		// Line length is bounded by the message size only.
		{name: "long line", in: "Subject: x\r\n\r\n" + long + "\r\n"},
		{name: "long bare-LF line", in: "Subject: x\n\n" + long + "\n", want: "Subject: x\r\n\r\n" + long + "\r\n"},
		{name: "long line, then a bare CR", in: "Subject: x\r\n\r\n" + long + "\r.\r\n", wantErr: ErrBareNewline},
		{name: "long line, then NUL", in: "Subject: x\r\n\r\n" + long + "\x00\r\n", wantErr: ErrNULInData},
		{name: "long header line", in: "Subject: " + long + "\r\n\r\nx\r\n"},
	}
	// A CR, LF, dot or NUL on each side of the 32 KiB reader's edge.
	for _, at := range []int{32*1024 - 2, 32*1024 - 1, 32 * 1024, 32*1024 + 1} {
		pre := "S: t\r\n\r\n"
		pad := strings.Repeat("b", at-len(pre))
		tests = append(tests,
			struct {
				name, in string
				bdat     bool
				want     string
				wantErr  error
			}{name: fmt.Sprintf("CRLF at %d", at), in: pre + pad + "\r\nc\r\n"},
			struct {
				name, in string
				bdat     bool
				want     string
				wantErr  error
			}{name: fmt.Sprintf("LF at %d", at), in: pre + pad + "\n..c\n\r\n", want: pre + pad + "\r\n.c\r\n\r\n"},
			struct {
				name, in string
				bdat     bool
				want     string
				wantErr  error
			}{name: fmt.Sprintf("LF dot LF at %d", at), in: pre + pad + "\n.\n\r\n", wantErr: ErrDotBareLF},
			struct {
				name, in string
				bdat     bool
				want     string
				wantErr  error
			}{name: fmt.Sprintf("bare CR at %d", at), in: pre + pad + "\rc\r\n", wantErr: ErrBareNewline},
			struct {
				name, in string
				bdat     bool
				want     string
				wantErr  error
			}{name: fmt.Sprintf("NUL at %d", at), in: pre + pad + "\x00\r\n", wantErr: ErrNULInData},
		)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			mc := Copier{DotStuffed: !tt.bdat}
			n, err := mc.Copy(&out, strings.NewReader(tt.in))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				return
			}
			want := tt.want
			if want == "" {
				want = tt.in
			}
			if out.String() != want {
				t.Fatalf("copied %.200q, want %.200q", out.String(), want)
			}
			if n != int64(len(tt.in)) {
				t.Fatalf("counted %d bytes, want %d", n, len(tt.in))
			}
		})
	}
}

// TestMessageCopierLongLineMemory checks that a line is streamed, not held:
// the bytes allocated to copy a 4 MiB line stay far below its size (the
// 32 KiB line reader comes from a pool).
func TestMessageCopierLongLineMemory(t *testing.T) {
	for _, end := range []string{"\r\n", "\n"} {
		msg := "Subject: x\r\n\r\n" + strings.Repeat("a", 4<<20) + end
		mc := Copier{DotStuffed: true}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		n, err := mc.Copy(io.Discard, strings.NewReader(msg))
		runtime.ReadMemStats(&after)
		if err != nil || n != int64(len(msg)) {
			t.Fatalf("copy: %d bytes, %v", n, err)
		}
		grew := after.TotalAlloc - before.TotalAlloc
		t.Logf("line end %q: copying a 4 MiB line allocated %d bytes", end, grew)
		if grew > 256<<10 {
			t.Fatalf("line end %q: copying a 4 MiB line allocated %d bytes", end, grew)
		}
	}
}

func TestMessageCopierStripsHeaders(t *testing.T) {
	in := "From: a@example.org\r\nX-Originating-IP: [192.0.2.7]\r\n\tcontinued 192.0.2.7\r\n" +
		"x-originating-ip:192.0.2.8\r\nSubject: hi\r\n\r\nX-Originating-IP: in the body stays\r\n"
	want := "Received: test\r\nFrom: a@example.org\r\nSubject: hi\r\n\r\nX-Originating-IP: in the body stays\r\n"
	var out bytes.Buffer
	mc := Copier{Received: []byte("Received: test\r\n"), Strip: StripAnonymous}
	n, err := mc.Copy(&out, strings.NewReader(in))
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

// TestMessageCopierStripsHeadersLF: a header section with bare-LF line
// ends loses the same headers, and comes out with CRLF.
func TestMessageCopierStripsHeadersLF(t *testing.T) {
	in := "From: a@example.org\nX-Originating-IP: [192.0.2.7]\n\tcontinued\nSubject: hi\n\n.X-Originating-IP: body\n\r\n"
	want := "From: a@example.org\r\nSubject: hi\r\n\r\nX-Originating-IP: body\r\n\r\n"
	var out bytes.Buffer
	mc := Copier{Strip: StripAnonymous, DotStuffed: true}
	if _, err := mc.Copy(&out, strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	if out.String() != want {
		t.Fatalf("got %q\nwant %q", out.String(), want)
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
	mc := Copier{}
	_, err := mc.Copy(&failingWriter{after: 10}, strings.NewReader("Subject: x\r\n\r\nbody\r\n"))
	var uw *WriteError
	if !errors.As(err, &uw) {
		t.Fatalf("err = %v, want an WriteError", err)
	}
}

// FuzzMessageCopier checks that whatever the client sends, under DATA or
// BDAT, what reaches the upstream has only CRLF line endings and no NUL,
// so no end-of-data can be smuggled past the upstream's dot-stuffing
// writer; that under DATA no "." line next to a bare LF gets through; and
// that the header stripping never panics.
func FuzzMessageCopier(f *testing.F) {
	f.Add([]byte("Subject: x\r\n\r\nbody\r\n"))
	f.Add([]byte("X-Originating-IP: 1\r\n x\r\n\r\n\n.\n"))
	f.Add([]byte("a\r.\r\n"))
	f.Add([]byte("Subject: t\n\nhello\n..x\n.\r\n"))
	f.Add([]byte("Subject: t\r\n\n.\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, dotStuffed := range []bool{true, false} {
			var out bytes.Buffer
			mc := Copier{Strip: StripAnonymous, DotStuffed: dotStuffed}
			if _, err := mc.Copy(&out, bytes.NewReader(in)); err != nil {
				continue
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
			if dotStuffed && (bytes.Contains(in, []byte("\n.\n")) || bytes.Contains(in, []byte("\n.\r\n"))) &&
				!bytes.Contains(in, []byte("\r\n.\n")) && !bytes.Contains(in, []byte("\r\n.\r\n")) {
				t.Fatalf("a dot line next to a bare LF passed: %q", in)
			}
		}
	})
}

// TestMessageCopierReuse checks that a line reader coming back from a failed
// message (with unread bytes in it) does not leak into the next message.
func TestMessageCopierReuse(t *testing.T) {
	const simpleBody = "Subject: test\r\n\r\nhello\r\n"
	for range 20 {
		mc := Copier{}
		bad := "Subject: x\r\n\r\n" + strings.Repeat("a", 40000) + "\x00\r\nleft over\r\n"
		if _, err := mc.Copy(io.Discard, strings.NewReader(bad)); !errors.Is(err, ErrNULInData) {
			t.Fatalf("err = %v, want ErrNULInData", err)
		}
		var out bytes.Buffer
		n, err := mc.Copy(&out, strings.NewReader(simpleBody))
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
	mc := Copier{Received: []byte("Received: bench\r\n")}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for range b.N {
		src.Reset(msg)
		if _, err := mc.Copy(io.Discard, src); err != nil {
			b.Fatal(err)
		}
	}
}
