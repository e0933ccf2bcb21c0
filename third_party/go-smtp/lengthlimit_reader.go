package smtp

import (
	"bytes"
	"errors"
	"io"
)

var ErrTooLongLine = errors.New("smtp: too long a line in input stream")

// lineLimitReader reads from the underlying Reader but restricts
// line length of lines in input stream to a certain length.
//
// If line length exceeds the limit - Read returns ErrTooLongLine
type lineLimitReader struct {
	R         io.Reader
	LineLimit int

	curLineLength int

	// tooLong is set once a line is found too long: Read then returns
	// ErrTooLongLine until skipLine, and rest holds what was read from R
	// from the start of that line on (it may end the line and go on with
	// the next ones), so that nothing after the line is lost.
	tooLong bool
	rest    []byte
}

func (r *lineLimitReader) Read(b []byte) (int, error) {
	if r.tooLong {
		if r.LineLimit > 0 {
			return 0, ErrTooLongLine
		}
		// No limit any more (a BDAT chunk follows its command): what
		// was held is data after all.
		r.tooLong, r.curLineLength = false, 0
	}

	var n int
	if len(r.rest) > 0 {
		n = copy(b, r.rest)
		r.rest = r.rest[n:]
		if len(r.rest) == 0 {
			r.rest = nil
		}
	} else {
		var err error
		n, err = r.R.Read(b)
		if err != nil {
			return n, err
		}
	}

	if r.LineLimit == 0 {
		return n, nil
	}
	if r.LineLimit < 0 {
		// Every byte is too long; keep the original per-byte semantics.
		if n > 0 {
			return 0, ErrTooLongLine
		}
		return n, nil
	}

	// Count whole stretches between line feeds instead of one byte
	// at a time (the counter only grows within a line, so checking once per
	// stretch finds the same overflow). A '\n' starts a new line whose
	// length counts the '\n' itself, as before.
	buf := b[:n]
	start := 0 // where the current line starts in b
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			r.curLineLength += len(buf)
			if r.curLineLength > r.LineLimit {
				return r.overflow(b, start, n)
			}
			return n, nil
		}
		r.curLineLength += i
		if r.curLineLength > r.LineLimit {
			return r.overflow(b, start, n)
		}
		r.curLineLength = 1
		start = n - len(buf) + i + 1
		buf = buf[i+1:]
	}
}

// overflow holds b[start:n], from the start of the line found too long,
// and returns the whole lines before it, if any; ErrTooLongLine comes with
// the next Read.
func (r *lineLimitReader) overflow(b []byte, start, n int) (int, error) {
	r.tooLong = true
	r.rest = append(append([]byte(nil), b[start:n]...), r.rest...)
	if start > 0 {
		return start, nil
	}
	return 0, ErrTooLongLine
}

// skipLine reads and drops the rest of the line found too long, up to and
// including its '\n', reading at most max bytes; what follows the '\n' is
// what Read returns next. It returns ErrTooLongLine when max bytes came
// without a '\n', or the error of the read.
func (r *lineLimitReader) skipLine(max int64) error {
	if !r.tooLong {
		return nil
	}
	buf, dropped := r.rest, int64(0)
	r.rest = nil
	var scratch []byte
	for {
		if i := bytes.IndexByte(buf, '\n'); i >= 0 && dropped+int64(i) < max {
			r.rest = append([]byte(nil), buf[i+1:]...)
			if len(r.rest) == 0 {
				r.rest = nil
			}
			r.tooLong, r.curLineLength = false, 1 // the '\n' counts, as in Read
			return nil
		}
		dropped += int64(len(buf))
		if dropped >= max {
			return ErrTooLongLine
		}
		if scratch == nil {
			scratch = make([]byte, 4096)
		}
		n, err := r.R.Read(scratch)
		buf = scratch[:n]
		if err != nil && bytes.IndexByte(buf, '\n') < 0 {
			return err
		}
	}
}
