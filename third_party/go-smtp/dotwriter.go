package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"sync"
)

// dotWriter is net/textproto's DotWriter working on runs of bytes instead of
// one WriteByte per byte: it writes the same bytes (a dot
// doubled at a line start, a bare LF turned into CRLF, ".\r\n" â after a CRLF
// if the data did not end with one â on Close) to the client's bufio.Writer,
// but copies everything between two changes with one Write.
// dotwriter_fuzz_test.go checks it against textproto's.
//
// The bytes go through a 64 KiB buffer taken from a pool for the length of
// the message and then through the client's own bufio.Writer (4 KiB, empty
// after the DATA command): a message costs one write per 64 KiB instead of
// one per 4 KiB, and an idle connection holds no more memory than before.
type dotWriter struct {
	c     *Client
	out   *bufio.Writer // the client's (c.text.W)
	w     *bufio.Writer // from dataWriters, nil once closed
	state int
}

const dataWriterSize = 64 * 1024

var dataWriters = sync.Pool{New: func() interface{} { return bufio.NewWriterSize(nil, dataWriterSize) }}

var errDotWriterClosed = errors.New("smtp: write to a closed data writer")

func newDotWriter(c *Client, out *bufio.Writer) *dotWriter {
	w := dataWriters.Get().(*bufio.Writer)
	w.Reset(out)
	return &dotWriter{c: c, out: out, w: w}
}

// The states of textproto's dotWriter.
const (
	wstateBegin     = iota // initial state; must be zero
	wstateBeginLine        // beginning of line
	wstateCR               // wrote \r (possibly at end of line)
	wstateData             // writing data in middle of line
)

// stateAfter is the state after writing p (which holds no LF) from state s,
// s being wstateData or wstateCR: any byte but CR leads to wstateData, and
// each CR toggles between wstateData and wstateCR (textproto's machine goes
// CR â data on a second CR).
func stateAfter(s int, p []byte) int {
	t := 0
	for t < len(p) && p[len(p)-1-t] == '\r' {
		t++
	}
	if t < len(p) {
		s = wstateData
	}
	if t%2 == 1 {
		if s == wstateData {
			s = wstateCR
		} else {
			s = wstateData
		}
	}
	return s
}

func (d *dotWriter) Write(b []byte) (n int, err error) {
	bw := d.w
	if bw == nil {
		// textproto's would write after the final dot; ours has given its
		// buffer back.
		return 0, errDotWriterClosed
	}
	for n < len(b) {
		if d.state == wstateBegin || d.state == wstateBeginLine {
			if b[n] == '.' {
				// escape leading dot (like textproto, the error shows on the next write)
				bw.WriteByte('.')
			}
			d.state = wstateData
		}
		rest := b[n:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			d.state = stateAfter(d.state, rest)
			m, err := bw.Write(rest)
			return n + m, err
		}
		if stateAfter(d.state, rest[:i]) == wstateCR {
			// CRLF: the line goes as is
			m, err := bw.Write(rest[:i+1])
			n += m
			if err != nil {
				return n, err
			}
		} else {
			// bare LF: write CRLF instead
			m, err := bw.Write(rest[:i])
			n += m
			if err != nil {
				return n, err
			}
			bw.WriteByte('\r')
			if err := bw.WriteByte('\n'); err != nil {
				return n, err
			}
			n++
		}
		d.state = wstateBeginLine
	}
	return n, nil
}

func (d *dotWriter) Close() error {
	if d.c != nil && d.c.dot == d {
		d.c.dot = nil
	}
	bw := d.w
	if bw == nil {
		return errDotWriterClosed
	}
	switch d.state {
	default:
		bw.WriteByte('\r')
		fallthrough
	case wstateCR:
		bw.WriteByte('\n')
		fallthrough
	case wstateBeginLine:
		bw.WriteString(".\r\n")
	}
	err := bw.Flush()
	if err == nil {
		err = d.out.Flush()
	}
	bw.Reset(nil)
	dataWriters.Put(bw)
	d.w = nil
	return err
}
