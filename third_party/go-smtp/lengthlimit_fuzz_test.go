package smtp

import (
	"bytes"
	"testing"
)

// oldLineLimitReader is the original per-byte implementation, kept to
// check the chunked one against.
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
	for _, chr := range b[:n] {
		if chr == '\n' {
			r.curLineLength = 0
		}
		r.curLineLength++
		if r.curLineLength > r.LineLimit {
			return 0, ErrTooLongLine
		}
	}
	return n, nil
}

func FuzzLineLimitReader(f *testing.F) {
	f.Add([]byte("short\r\nlines\r\n"), 10, uint8(3))
	f.Add([]byte("a much longer line than allowed\r\n"), 8, uint8(5))
	f.Add([]byte("\n\n\n"), 1, uint8(1))
	f.Fuzz(func(t *testing.T, in []byte, limit int, chunk uint8) {
		if limit < -1 || limit > 1<<16 {
			return
		}
		size := int(chunk)%64 + 1
		oldR := &oldLineLimitReader{R: bytes.NewReader(in), LineLimit: limit}
		newR := &lineLimitReader{R: bytes.NewReader(in), LineLimit: limit}
		ob, nb := make([]byte, size), make([]byte, size)
		for i := 0; i < len(in)+2; i++ {
			on, oerr := oldR.Read(ob)
			nn, nerr := newR.Read(nb)
			if on != nn || oerr != nerr || !bytes.Equal(ob[:on], nb[:nn]) {
				t.Fatalf("read %d: old (%d, %v, %q) new (%d, %v, %q)", i, on, oerr, ob[:on], nn, nerr, nb[:nn])
			}
			if oerr != nil {
				return
			}
		}
	})
}
