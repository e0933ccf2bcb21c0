package smtp

import (
	"bytes"
	"io"
	"testing"
)

// oldLineLimitReader is the original per-byte implementation, kept to
// check the chunked one against; as the chunked one, it returns the whole
// lines read before a line found too long first.
type oldLineLimitReader struct {
	R             *bytes.Reader
	LineLimit     int
	curLineLength int
}

func (r *oldLineLimitReader) Read(b []byte) (int, error) {
	if r.curLineLength > r.LineLimit && r.LineLimit > 0 {
		return 0, ErrTooLongLine
	}
	n, err := r.R.Read(b)
	if err != nil {
		return n, err
	}
	if r.LineLimit == 0 {
		return n, nil
	}
	start := 0 // of the current line in b
	for i, chr := range b[:n] {
		if chr == '\n' {
			r.curLineLength = 0
			start = i + 1
		}
		r.curLineLength++
		if r.curLineLength > r.LineLimit {
			// The whole lines before the one too long come first.
			if r.LineLimit > 0 && start > 0 {
				return start, nil
			}
			return 0, ErrTooLongLine
		}
	}
	return n, nil
}

func FuzzLineLimitReader(f *testing.F) {
	f.Add([]byte("short\r\nlines\r\n"), 10, uint8(3))
	f.Add([]byte("a much longer line than allowed\r\n"), 8, uint8(5))
	f.Add([]byte("\n\n\n"), 1, uint8(1))
	f.Add([]byte("ok\r\nlonger than eight\r\nnext\r\n"), 8, uint8(64))
	f.Fuzz(func(t *testing.T, in []byte, limit int, chunk uint8) {
		if limit < -1 || limit > 1<<16 {
			return
		}
		size := int(chunk)%64 + 1
		oldR := &oldLineLimitReader{R: bytes.NewReader(in), LineLimit: limit}
		newR := &lineLimitReader{R: bytes.NewReader(in), LineLimit: limit}
		ob, nb := make([]byte, size), make([]byte, size)
		tooLong := false
		for i := 0; i < len(in)+2; i++ {
			on, oerr := oldR.Read(ob)
			nn, nerr := newR.Read(nb)
			if on != nn || oerr != nerr || !bytes.Equal(ob[:on], nb[:nn]) {
				t.Fatalf("read %d: old (%d, %v, %q) new (%d, %v, %q)", i, on, oerr, ob[:on], nn, nerr, nb[:nn])
			}
			if oerr != nil {
				tooLong = oerr == ErrTooLongLine
				break
			}
		}
		if !tooLong || limit <= 0 {
			return
		}
		// After the line too long, skipLine drops it up to its '\n'
		// and Read goes on with what follows.
		end, ok := tooLongLineEnd(in, limit)
		if !ok {
			t.Fatalf("no line of %q is longer than %d, yet ErrTooLongLine", in, limit)
		}
		err := newR.skipLine(1 << 20)
		if end < 0 {
			if err != io.EOF {
				t.Fatalf("skipLine without a '\\n' left: %v, want EOF", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("skipLine: %v", err)
		}
		newR.LineLimit = 0
		rest, err := io.ReadAll(newR)
		if err != nil || !bytes.Equal(rest, in[end+1:]) {
			t.Fatalf("after skipLine: %q, %v; want %q", rest, err, in[end+1:])
		}
	})
}

// tooLongLineEnd is the index in `in` of the '\n' that ends the first line
// longer than limit (-1: it has none), counted as lineLimitReader counts:
// a line after the first also counts the '\n' before it.
func tooLongLineEnd(in []byte, limit int) (int, bool) {
	pos, prev := 0, 0
	for pos <= len(in) {
		i := bytes.IndexByte(in[pos:], '\n')
		n := i
		if i < 0 {
			n = len(in) - pos
		}
		if prev+n > limit {
			if i < 0 {
				return -1, true
			}
			return pos + i, true
		}
		if i < 0 {
			return 0, false
		}
		pos, prev = pos+i+1, 1
	}
	return 0, false
}
