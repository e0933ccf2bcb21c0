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
}

func (r *lineLimitReader) Read(b []byte) (int, error) {
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
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			r.curLineLength += len(buf)
			if r.curLineLength > r.LineLimit {
				return 0, ErrTooLongLine
			}
			return n, nil
		}
		r.curLineLength += i
		if r.curLineLength > r.LineLimit {
			return 0, ErrTooLongLine
		}
		r.curLineLength = 1
		buf = buf[i+1:]
	}
}
