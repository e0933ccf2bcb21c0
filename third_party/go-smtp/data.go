package smtp

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

type EnhancedCode [3]int

// SMTPError specifies the error code, enhanced error code (if any) and
// message returned by the server.
type SMTPError struct {
	Code         int
	EnhancedCode EnhancedCode
	Message      string
}

// NoEnhancedCode is used to indicate that enhanced error code should not be
// included in response.
//
// Note that RFC 2034 requires an enhanced code to be included in all 2xx, 4xx
// and 5xx responses. This constant is exported for use by extensions, you
// should probably use EnhancedCodeNotSet instead.
var NoEnhancedCode = EnhancedCode{-1, -1, -1}

// EnhancedCodeNotSet is a nil value of EnhancedCode field in SMTPError, used
// to indicate that backend failed to provide enhanced status code. X.0.0 will
// be used (X is derived from error code).
var EnhancedCodeNotSet = EnhancedCode{0, 0, 0}

func (err *SMTPError) Error() string {
	s := fmt.Sprintf("SMTP error %03d", err.Code)
	if err.Message != "" {
		s += ": " + err.Message
	}
	return s
}

func (err *SMTPError) Temporary() bool {
	return err.Code/100 == 4
}

var ErrDataTooLarge = &SMTPError{
	Code:         552,
	EnhancedCode: EnhancedCode{5, 3, 4},
	Message:      "Maximum message size exceeded",
}

type dataReader struct {
	r     *bufio.Reader
	state int

	limited bool
	n       int64 // Maximum bytes remaining
}

func newDataReader(c *Conn) *dataReader {
	dr := &dataReader{
		r: c.text.R,
	}

	if c.server.MaxMessageBytes > 0 {
		dr.limited = true
		dr.n = int64(c.server.MaxMessageBytes)
	}

	return dr
}

// States of dataReader.state. The reader is the state machine of
// net/textproto's dotReader, except that it keeps CRLF as is and that only
// CRLF ends a line (RFC 5321 §2.3.8: a bare LF is data, so "\n.\n" and
// "\n.\r\n" never end the message).
const (
	stateBeginLine = iota // beginning of line; initial state; must be zero
	stateDot              // read . at beginning of line
	stateDotCR            // read .\r at beginning of line
	stateCR               // read \r (possibly at end of line)
	stateData             // reading data in middle of line
	stateEOF              // reached .\r\n end marker line
)

// Read un-dot-stuffs the message. Postern: it works on the bytes already
// buffered in r.r (Peek/Discard) instead of one ReadByte per byte, and copies
// the middle of each line up to the next CR with bytes.IndexByte; the
// transitions and what is consumed from r.r are exactly those of the
// byte-at-a-time state machine (see data_fuzz_test.go).
func (r *dataReader) Read(b []byte) (n int, err error) {
	if r.limited {
		if r.n <= 0 {
			return 0, ErrDataTooLarge
		}
		if int64(len(b)) > r.n {
			b = b[0:r.n]
		}
	}

	for n < len(b) && r.state != stateEOF {
		// Like ReadByte: fill the buffer only when it is empty.
		if _, err = r.r.Peek(1); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			break
		}
		buf, _ := r.r.Peek(r.r.Buffered())
		i := 0
		for i < len(buf) && n < len(b) && r.state != stateEOF {
			if r.state == stateData {
				// Every byte up to and including the next CR is data.
				chunk := buf[i:]
				if room := len(b) - n; len(chunk) > room {
					chunk = chunk[:room]
				}
				if j := bytes.IndexByte(chunk, '\r'); j >= 0 {
					chunk = chunk[:j+1]
					r.state = stateCR
				}
				n += copy(b[n:], chunk)
				i += len(chunk)
				continue
			}
			c := buf[i]
			i++
			switch r.state {
			case stateBeginLine:
				if c == '.' {
					r.state = stateDot
					continue
				}
				if c == '\r' {
					r.state = stateCR
					break
				}
				r.state = stateData
			case stateDot:
				if c == '\r' {
					r.state = stateDotCR
					continue
				}
				r.state = stateData
			case stateDotCR:
				if c == '\n' {
					r.state = stateEOF
					continue
				}
				// Postern: ".\r" not followed by "\n": the dot was
				// stuffing, the CR is data, and c is looked at again in
				// the middle of the line, so that a CR there can start
				// the line's CRLF (net/textproto unreads it the same way).
				// It used to be dropped with the CR, and ".\r\r\n.\r\n"
				// never ended the message.
				i--
				c = '\r'
				r.state = stateData
			case stateCR:
				if c == '\n' {
					r.state = stateBeginLine
					break
				}
				// Postern: a second CR may be the start of the CRLF that
				// ends the line ("line\r\r\n.\r\n" ends the message, as
				// with net/textproto, which re-reads the byte).
				if c != '\r' {
					r.state = stateData
				}
			}
			b[n] = c
			n++
		}
		r.r.Discard(i)
	}
	if err == nil && r.state == stateEOF {
		err = io.EOF
	}

	if r.limited {
		r.n -= int64(n)
	}
	return
}
