package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand"
	"net/textproto"
	"testing"
)

// byteDataReader is go-smtp v0.25.1's dataReader, byte at a time, with the
// two CR fixes of Postern patch 10; it is the reference for the chunked
// dataReader.Read (patch 3). FuzzDataReader also checks it against
// net/textproto's DotReader, so the reference itself is not trusted blindly
// (v0.25.1's code, which both readers were compared with before, never
// ended a message whose last line ended in CR CR LF).
type byteDataReader struct {
	r     *bufio.Reader
	state int

	limited bool
	n       int64 // Maximum bytes remaining
}

func (r *byteDataReader) Read(b []byte) (n int, err error) {
	if r.limited {
		if r.n <= 0 {
			return 0, ErrDataTooLarge
		}
		if int64(len(b)) > r.n {
			b = b[0:r.n]
		}
	}

	// Code below is taken from net/textproto, modified to keep CRLF as is
	// and to take only CRLF as a line ending.

	// Run data through a simple state machine to
	// elide leading dots and detect End-of-Data (<CR><LF>.<CR><LF>) line.
	const (
		stateBeginLine = iota // beginning of line; initial state; must be zero
		stateDot              // read . at beginning of line
		stateDotCR            // read .\r at beginning of line
		stateCR               // read \r (possibly at end of line)
		stateData             // reading data in middle of line
		stateEOF              // reached .\r\n end marker line
	)
	for n < len(b) && r.state != stateEOF {
		var c byte
		c, err = r.r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			break
		}
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
			// Drop the dot, emit the CR, look at c again.
			r.r.UnreadByte()
			c = '\r'
			r.state = stateData
		case stateCR:
			if c == '\n' {
				r.state = stateBeginLine
				break
			}
			if c != '\r' {
				r.state = stateData
			}
		case stateData:
			if c == '\r' {
				r.state = stateCR
			}
		}
		b[n] = c
		n++
	}
	if err == nil && r.state == stateEOF {
		err = io.EOF
	}

	if r.limited {
		r.n -= int64(n)
	}
	return
}

var errInjected = errors.New("injected read error")

// chunkReader hands out data in chunks whose boundaries depend only on the
// position (so both readers see the same chunks whatever their call pattern),
// optionally returns data and io.EOF together, and from errAt on fails for
// good, like lineLimitReader after ErrTooLongLine.
type chunkReader struct {
	data     []byte
	pos      int
	bounds   map[int]bool
	errAt    int // < 0: never
	eofEarly bool
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.errAt >= 0 && c.pos >= c.errAt {
		return 0, errInjected
	}
	if c.pos >= len(c.data) {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	end := c.pos + 1
	for end < len(c.data) && end-c.pos < len(p) && !c.bounds[end] && (c.errAt < 0 || end < c.errAt) {
		end++
	}
	n := copy(p, c.data[c.pos:end])
	c.pos += n
	if c.eofEarly && c.pos == len(c.data) && c.errAt < 0 {
		return n, io.EOF
	}
	return n, nil
}

type readStep struct {
	n   int
	out string
	err error
}

type dataTrace struct {
	steps    []readStep
	drainN   int64
	drainErr error
	rest     string
	restErr  error
}

// runDataReader drives a reader as go-smtp's handleData and a session would:
// Reads with random buffer sizes until an error (or a random early stop),
// then limit off and drain with io.Copy(io.Discard, r), then what is left
// unread in the bufio.Reader.
func runDataReader(t *testing.T, data []byte, seed int64, bufSize int, limit int64, errAt int, newReader bool) dataTrace {
	rng := rand.New(rand.NewSource(seed))
	cr := &chunkReader{data: data, bounds: map[int]bool{}, errAt: errAt, eofEarly: rng.Intn(2) == 0}
	for i := 0; i < len(data)/4+1; i++ {
		cr.bounds[rng.Intn(len(data)+1)] = true
	}
	br := bufio.NewReaderSize(cr, bufSize)

	var r io.Reader
	var unlimit func()
	if newReader {
		dr := &dataReader{r: br, limited: limit > 0, n: limit}
		r, unlimit = dr, func() { dr.limited = false }
	} else {
		dr := &byteDataReader{r: br, limited: limit > 0, n: limit}
		r, unlimit = dr, func() { dr.limited = false }
	}

	var tr dataTrace
	stopAfter := -1
	if rng.Intn(4) == 0 {
		stopAfter = rng.Intn(8)
	}
	for i := 0; i != stopAfter; i++ {
		var size int
		switch rng.Intn(4) {
		case 0:
			size = rng.Intn(4)
		case 1:
			size = rng.Intn(64)
		case 2:
			size = rng.Intn(4096)
		default:
			size = rng.Intn(len(data) + 2)
		}
		buf := make([]byte, size)
		n, err := r.Read(buf)
		tr.steps = append(tr.steps, readStep{n, string(buf[:n]), err})
		if err != nil || len(tr.steps) > 10000 {
			break
		}
	}
	unlimit()
	tr.drainN, tr.drainErr = io.Copy(io.Discard, r)
	rest, err := io.ReadAll(br)
	tr.rest, tr.restErr = string(rest), err
	return tr
}

// crlfOnly turns every LF that does not follow a CR into CRLF: the inputs on
// which dataReader and net/textproto's DotReader must agree (textproto also
// ends a line at a bare LF, which RFC 5321 §2.3.8 forbids a server to do).
func crlfOnly(data []byte) []byte {
	out := make([]byte, 0, len(data)+8)
	for i, c := range data {
		if c == '\n' && (i == 0 || data[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

// checkAgainstTextproto reads data with dataReader and with net/textproto's
// DotReader: both must find the end of the data at the same byte (same bytes
// left unread, or both io.ErrUnexpectedEOF), and return the same message
// once CRLF is written LF as textproto does (but for a CR at the end of a
// truncated message).
func checkAgainstTextproto(t *testing.T, data []byte) {
	br := bufio.NewReaderSize(bytes.NewReader(data), 16)
	got, gotErr := io.ReadAll(&dataReader{r: br})
	gotRest, _ := io.ReadAll(br)

	tbr := bufio.NewReaderSize(bytes.NewReader(data), 16)
	want, wantErr := io.ReadAll(textproto.NewReader(tbr).DotReader())
	wantRest, _ := io.ReadAll(tbr)

	if gotErr != wantErr || string(gotRest) != string(wantRest) {
		t.Fatalf("input %q: end of data: error %v, unread %q; textproto: %v, unread %q",
			data, gotErr, gotRest, wantErr, wantRest)
	}
	lf := bytes.ReplaceAll(got, []byte("\r\n"), []byte("\n"))
	if gotErr != nil {
		// A truncated message: textproto holds a CR until it sees the
		// next byte, and loses it at the end of the input.
		lf = bytes.TrimSuffix(lf, []byte("\r"))
	}
	if !bytes.Equal(lf, want) {
		t.Fatalf("input %q: message %q; textproto %q", data, got, want)
	}
}

func FuzzDataReader(f *testing.F) {
	for _, s := range []string{
		"",
		".\r\n",
		"Subject: x\r\n\r\nbody\r\n.\r\n",
		"a\r\n..b\r\n.c\r\n.\r\nRSET\r\n",
		"a\r\n.\rX\r\n.\r\n",
		"a\r\r\n.\r\nb\r\n.\r\n",
		"a\n.\nb\r.\r\n\r\n.\r\nNEXT",
		"\r\n.\r\r\n.\r\n",
		"no end",
		"line\r\n.",
		"line\r\r\n.\r\n",
		"line\r\r\r\n.\r\nQUIT\r\n",
		".\r\r\n.\r\n",
		"\r\r\n.\r\n",
	} {
		f.Add([]byte(s), int64(1), uint16(16), uint32(0), int32(-1))
		f.Add([]byte(s), int64(2), uint16(4096), uint32(5), int32(-1))
		f.Add([]byte(s), int64(3), uint16(20), uint32(0), int32(7))
	}
	f.Fuzz(func(t *testing.T, data []byte, seed int64, bufSize uint16, limit uint32, errAt int32) {
		checkAgainstTextproto(t, crlfOnly(data))

		bs := 16 + int(bufSize)%8192
		lim := int64(limit % (uint32(len(data)) + 8))
		if limit%3 == 0 {
			lim = 0
		}
		ea := -1
		if errAt >= 0 {
			ea = int(errAt) % (len(data) + 2)
		}
		want := runDataReader(t, data, seed, bs, lim, ea, false)
		got := runDataReader(t, data, seed, bs, lim, ea, true)
		if len(got.steps) != len(want.steps) {
			t.Fatalf("%d reads, byte reader %d\n got %+v\nwant %+v", len(got.steps), len(want.steps), got.steps, want.steps)
		}
		for i := range want.steps {
			if got.steps[i] != want.steps[i] {
				t.Fatalf("read %d: got %+v, byte reader %+v", i, got.steps[i], want.steps[i])
			}
		}
		if got.drainN != want.drainN || got.drainErr != want.drainErr {
			t.Fatalf("drain: got %d, %v; byte reader %d, %v", got.drainN, got.drainErr, want.drainN, want.drainErr)
		}
		if got.rest != want.rest || got.restErr != want.restErr {
			t.Fatalf("unread: got %q, %v; byte reader %q, %v", got.rest, got.restErr, want.rest, want.restErr)
		}
	})
}
