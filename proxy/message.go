package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"sync"
)

// maxMessageLine is the longest message line accepted, CRLF included.
// RFC 5322 §2.1.1 allows 998 characters; like go-smtp's command limit we
// accept twice the RFC 5321 §4.5.3.1.6 text-line size before refusing.
const maxMessageLine = 2000

var (
	errBareNewline = errors.New("bare CR or LF in message")
	errNULInData   = errors.New("NUL byte in message")
	errLongLine    = errors.New("message line too long")
)

// upstreamWriteError marks a failure to write to the upstream, so the
// caller can tell it from a problem with what the client sent.
type upstreamWriteError struct{ err error }

func (e *upstreamWriteError) Error() string { return "writing to upstream: " + e.err.Error() }
func (e *upstreamWriteError) Unwrap() error { return e.err }

// messageCopier streams one message from the client to the upstream DATA
// writer, line by line, without holding more than one line:
//   - the Received header (if any) goes first;
//   - every line must end in CRLF and hold no other CR or LF: a bare LF or
//     CR is how SMTP smuggling hides a second end-of-data from one server
//     and shows it to the next, so it is refused, like Postfix's
//     smtpd_forbid_bare_newline;
//   - NUL bytes and lines over maxMessageLine are refused;
//   - in the header section, the headers named in strip (lower case, with
//     the colon) are dropped along with their continuation lines.
type messageCopier struct {
	received []byte
	strip    [][]byte
}

// stripAnonymous lists headers dropped in anonymous mode.
var stripAnonymous = [][]byte{[]byte("x-originating-ip:")}

// lineReaders holds the copiers' 32 KiB line readers: a fresh one per
// message was most of the bytes allocated under many small messages.
var lineReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 32*1024) }}

// copy returns the number of message bytes read from src.
func (mc *messageCopier) copy(dst io.Writer, src io.Reader) (int64, error) {
	if len(mc.received) > 0 {
		if _, err := dst.Write(mc.received); err != nil {
			return 0, &upstreamWriteError{err}
		}
	}
	r, ok := src.(*bufio.Reader)
	if !ok || r.Size() < 32*1024 { // else bufio.NewReaderSize would use src itself
		r = lineReaders.Get().(*bufio.Reader)
		r.Reset(src)
		defer func() {
			r.Reset(nil) // drop src and anything left unread
			lineReaders.Put(r)
		}()
	}
	var n int64
	inHeader, skipping := true, false
	for {
		line, err := r.ReadSlice('\n')
		n += int64(len(line))
		if errors.Is(err, bufio.ErrBufferFull) || len(line) > maxMessageLine {
			return n, errLongLine
		}
		if len(line) > 0 {
			if gerr := checkLine(line, err == nil); gerr != nil {
				return n, gerr
			}
			if inHeader {
				switch {
				case len(line) == 2: // CRLF: end of the header section
					inHeader, skipping = false, false
				case line[0] == ' ' || line[0] == '\t':
					// a continuation line follows the fate of its header
				default:
					skipping = hasHeaderPrefix(line, mc.strip)
				}
			}
			if !skipping {
				if _, werr := dst.Write(line); werr != nil {
					return n, &upstreamWriteError{werr}
				}
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// checkLine enforces CRLF-only line endings and no NUL. complete is false for
// the last fragment before EOF, which has no line ending: go-smtp's DATA
// reader always ends on CRLF, so only a BDAT message can end that way.
func checkLine(line []byte, complete bool) error {
	body := line
	if complete {
		if len(line) < 2 || line[len(line)-2] != '\r' {
			return errBareNewline
		}
		body = line[:len(line)-2]
	}
	if bytes.IndexByte(body, '\r') >= 0 || bytes.IndexByte(body, '\n') >= 0 {
		return errBareNewline
	}
	if bytes.IndexByte(body, 0) >= 0 {
		return errNULInData
	}
	return nil
}

func hasHeaderPrefix(line []byte, names [][]byte) bool {
	for _, name := range names {
		if len(line) >= len(name) && bytes.EqualFold(line[:len(name)], name) {
			return true
		}
	}
	return false
}
