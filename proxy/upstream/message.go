package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"sync"
)

var (
	ErrBareNewline = errors.New("bare CR in message")
	ErrDotBareLF   = errors.New(`"." line next to a bare LF in message`)
	ErrNULInData   = errors.New("NUL byte in message")
)

// WriteError marks a failure to write to the upstream, so the
// caller can tell it from a problem with what the client sent.
type WriteError struct{ err error }

func (e *WriteError) Error() string { return "writing to upstream: " + e.err.Error() }
func (e *WriteError) Unwrap() error { return e.err }

// Copier streams one message from the client to the upstream DATA
// writer (which dot-stuffs it and ends it with CRLF.CRLF), holding at most
// one 32 KiB buffer whatever the line lengths: a line is bounded only by the
// message size limit.
//   - the Received header (if any) goes first;
//   - a line ended by a bare LF is passed on ended by CRLF, as Postfix's
//     smtpd_forbid_bare_newline = normalize does (curl -T, Python smtplib
//     with bytes, PHP mail() send such lines). Only CRLF.CRLF ended the
//     message (go-smtp's DATA reader), so the upstream sees one message;
//   - a bare CR is refused: no MTA takes it for a line end we could
//     normalise, and some take "\r.\r" for the end of data (SMTP smuggling);
//   - under DATA, a line after a bare LF is un-dot-stuffed here (the DATA
//     reader only un-stuffs after CRLF), so the upstream delivers what
//     Postfix would; and a "." line next to a bare LF ("\n.\n", "\n.\r\n",
//     "\r\n.\n") is refused: it ends the message at some servers and not at
//     others, so no reading of it is safe to guess;
//   - NUL bytes are refused;
//   - in the header section, the headers named in strip (lower case, with
//     the colon) are dropped along with their continuation lines.
type Copier struct {
	Received []byte
	Strip    [][]byte
	// DotStuffed is true under DATA, where src is go-smtp's DATA reader,
	// and false under BDAT, whose chunks carry the message as is.
	DotStuffed bool
}

// copyState is where the copier is in the message between two fragments
// of it (a fragment is a line, or a 32 KiB piece of a longer one).
type copyState struct {
	midLine     bool // the last fragment did not end its line
	afterBareLF bool // the last line ended with a bare LF
	inHeader    bool
	skipping    bool // dropping a stripped header and its continuations
}

// StripAnonymous lists headers dropped in anonymous mode.
var StripAnonymous = [][]byte{[]byte("x-originating-ip:")}

// lineReaders holds the copiers' 32 KiB line readers: a fresh one per
// message was most of the bytes allocated under many small messages.
var lineReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 32*1024) }}

var crlf = []byte("\r\n")

// Copy returns the number of message bytes read from src.
func (mc *Copier) Copy(dst io.Writer, src io.Reader) (int64, error) {
	if len(mc.Received) > 0 {
		if _, err := dst.Write(mc.Received); err != nil {
			return 0, &WriteError{err}
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
	st := copyState{inHeader: true}
	for {
		frag, err := r.ReadSlice('\n')
		full := errors.Is(err, bufio.ErrBufferFull)
		if full && frag[len(frag)-1] == '\r' {
			// Keep a CR with the LF that may follow it in the
			// next fragment (ReadSlice's byte can be unread).
			_ = r.UnreadByte()
			frag = frag[:len(frag)-1]
		}
		n += int64(len(frag))
		if len(frag) > 0 {
			if ferr := mc.fragment(dst, frag, err == nil, &st); ferr != nil {
				return n, ferr
			}
		}
		switch {
		case err == nil || full:
		case err == io.EOF:
			return n, nil
		default:
			return n, err
		}
	}
}

// fragment checks and forwards one fragment; complete says it ends with
// LF. The last fragment of a BDAT message may end with no line end at
// all; go-smtp's DATA reader always ends on CRLF.
func (mc *Copier) fragment(dst io.Writer, frag []byte, complete bool, st *copyState) error {
	body, bareLF := frag, false // body: the fragment without its line end
	if complete {
		body = frag[:len(frag)-1]
		if len(body) > 0 && body[len(body)-1] == '\r' {
			body = body[:len(body)-1]
		} else {
			bareLF = true
		}
	}
	if bytes.IndexByte(body, '\r') >= 0 {
		return ErrBareNewline
	}
	if bytes.IndexByte(body, 0) >= 0 {
		return ErrNULInData
	}
	lineStart := !st.midLine
	cut := 0 // bytes of frag not forwarded: a stuffing dot
	if lineStart && mc.DotStuffed {
		switch {
		case st.afterBareLF && len(body) > 0 && body[0] == '.':
			if len(body) == 1 && complete {
				return ErrDotBareLF // "\n.\n" or "\n.\r\n"
			}
			cut = 1 // the stuffing dot the DATA reader left after a bare LF
		case !st.afterBareLF && bareLF && len(body) == 0:
			// An empty line ended by a bare LF after CRLF: it is
			// "\r\n.\n" (the DATA reader took the dot for stuffing) as
			// much as "\r\n\n", and the two cannot be told apart.
			return ErrDotBareLF
		}
	}
	if lineStart && st.inHeader {
		line := body[cut:]
		switch {
		case complete && len(line) == 0: // the end of the header section
			st.inHeader, st.skipping = false, false
		case len(line) > 0 && (line[0] == ' ' || line[0] == '\t'):
			// a continuation line follows the fate of its header
		default:
			st.skipping = hasHeaderPrefix(line, mc.Strip)
		}
	}
	st.midLine = !complete
	if complete {
		st.afterBareLF = bareLF
	}
	if st.skipping {
		return nil
	}
	if !bareLF {
		return write(dst, frag[cut:])
	}
	if err := write(dst, body[cut:]); err != nil {
		return err
	}
	return write(dst, crlf)
}

func write(dst io.Writer, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if _, err := dst.Write(b); err != nil {
		return &WriteError{err}
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
