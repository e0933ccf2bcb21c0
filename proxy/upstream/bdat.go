package upstream

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"

	"github.com/emersion/go-smtp"
)

// A message that fits in one chunk goes to an upstream offering CHUNKING
// (RFC 3030) as "BDAT <size> LAST" and the message, in one write, with one
// reply: DATA's command, its 354 and the wait for it are saved, and
// nothing is dot-stuffed on the way out nor un-stuffed at the upstream. The
// message is held whole first (BDAT announces its size), so it is only
// sent once it was read and checked completely, as the final dot is under
// DATA; a message that outgrows the chunk goes as DATA after all
// (bdatWriter), with what was held written first.
//
// go-smtp's client has no BDAT: the chunk is written on the connection
// under it (its buffered writer is empty between commands, as every
// command flushes), and the one reply is read with a reader of Postern's
// (its buffered reader is empty between replies, as nothing is pipelined
// beyond the transaction's last reply).

// bdatHeadroom is the room for "BDAT <size> LAST\r\n" kept in front of the
// message in its buffer, so that command and message leave in one write.
const bdatHeadroom = len("BDAT 65536 LAST\r\n")

// bdatMax is the largest message sent as one chunk: with its command it
// is one write of timedConn (one deadline).
const bdatMax = timedWriteChunk - bdatHeadroom

// bdatBuffers hold the messages being collected for one chunk.
var bdatBuffers = sync.Pool{New: func() any {
	b := make([]byte, bdatHeadroom, bdatHeadroom+bdatMax)
	return &b
}}

// bdatReplies read the reply to a chunk; 512 bytes hold any single-line
// reply, and textproto reads a longer one through it all the same.
var bdatReplies = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 512) }}

// chunkingWire is the connection to write BDAT on, or nil when messages
// go as DATA: the upstream does not offer CHUNKING, or go-smtp's client
// holds the TLS layer itself (--upstream-tls starttls without XCLIENT),
// so the connection under it is not the session's.
func (u *Conn) chunkingWire() net.Conn {
	if u.wire == nil {
		return nil
	}
	if ok, _ := u.client.Extension("CHUNKING"); !ok {
		return nil
	}
	return u.wire
}

// bdatWriter collects the message for one BDAT LAST chunk; when it grows
// beyond bdatMax it sends DATA instead and from then on writes through
// go-smtp's DATA writer (dot-stuffing), what was collected first.
type bdatWriter struct {
	u    *Conn
	buf  []byte // headroom, then the message so far
	data *smtp.DataCommand
	// dataErr is DATA's failure (the upstream's refusal, or the
	// connection's): the caller passes it on as the upstream's answer.
	dataErr error
}

func (w *bdatWriter) Write(p []byte) (int, error) {
	switch {
	case w.data != nil:
		return w.data.Write(p)
	case w.dataErr != nil:
		return 0, w.dataErr
	case len(w.buf)+len(p) <= cap(w.buf):
		w.buf = append(w.buf, p...)
		return len(p), nil
	}
	data, err := w.u.client.Data()
	if err != nil {
		w.dataErr = err
		return 0, err
	}
	w.data = data
	if _, err := data.Write(w.buf[bdatHeadroom:]); err != nil {
		return 0, err
	}
	return data.Write(p)
}

// dataChunked is Data for an upstream taking BDAT on wire; u.mu is held.
func (u *Conn) dataChunked(wire net.Conn, body func(w io.Writer) (int64, error)) (resp string, n int64, bodyErr, err error) {
	bp := bdatBuffers.Get().(*[]byte)
	defer bdatBuffers.Put(bp)
	w := &bdatWriter{u: u, buf: (*bp)[:bdatHeadroom]}
	n, bodyErr = body(w)
	switch {
	case w.dataErr != nil:
		// DATA was refused or failed once the message outgrew the
		// chunk: the upstream's answer to the message, as in Data.
		return "", n, nil, u.checked(w.dataErr)
	case bodyErr != nil:
		u.Abort() // no final dot, no BDAT LAST: the upstream keeps nothing
		return "", n, bodyErr, nil
	case w.data != nil:
		r, err := w.data.CloseWithResponse()
		u.inTransaction = false
		if err != nil {
			return "", n, nil, u.checked(err)
		}
		return r.StatusText, n, nil, nil
	}
	resp, err = u.bdatLast(wire, w.buf)
	return resp, n, nil, err
}

// bdatLast sends the collected message (buf: headroom, then the message)
// as BDAT LAST and reads the upstream's reply.
func (u *Conn) bdatLast(wire net.Conn, buf []byte) (string, error) {
	cmd := "BDAT " + strconv.Itoa(len(buf)-bdatHeadroom) + " LAST\r\n"
	start := bdatHeadroom - len(cmd)
	copy(buf[start:], cmd)
	if _, err := wire.Write(buf[start:]); err != nil {
		u.Abort() // a part of the chunk may have gone: never reuse
		return "", err
	}
	br := bdatReplies.Get().(*bufio.Reader)
	br.Reset(wire)
	_, msg, err := textproto.NewReader(br).ReadResponse(250)
	more := br.Buffered() > 0
	br.Reset(nil)
	bdatReplies.Put(br)
	if more {
		// The upstream said more than its reply: what it meant is
		// unknown, so the connection is not used again (the reply
		// stands: the message was or was not taken).
		u.Abort()
	}
	var te *textproto.Error
	switch {
	case err == nil:
		u.inTransaction = false
		return msg, nil
	case errors.As(err, &te):
		// Refused: the transaction stays open for Reset's RSET (RFC
		// 3030 §2 lets the client RSET after a failed chunk).
		return "", replyError(te.Code, te.Msg)
	}
	return "", u.checked(err)
}

// replyError is the *smtp.SMTPError of an upstream reply, its enhanced
// code split off the text as go-smtp's client does.
func replyError(code int, text string) *smtp.SMTPError {
	se := &smtp.SMTPError{Code: code, Message: text}
	first, rest, ok := strings.Cut(text, " ")
	if !ok {
		return se
	}
	ec, ok := parseEnhanced(first)
	if !ok {
		return se
	}
	se.EnhancedCode = ec
	// RFC 2034: the enhanced code starts every line of the reply.
	se.Message = strings.ReplaceAll(rest, "\n"+first+" ", "\n")
	return se
}
