package policy

import "io"

// lastLineTerminator yields a message's bytes and, when they end inside a
// line, a CRLF after them.
//
// go-smtp's DATA reader always ends on CRLF, but a BDAT message ends
// wherever its LAST chunk does. The upstream never sees an unterminated
// line either way: go-smtp's client ends it with CRLF before the final dot.
// Adding that CRLF here, before anything reads the message, means the
// header check judges the bytes the upstream receives: it once stopped at
// the last line ending and never saw a final "From: ceo@bank.test" that
// the upstream then stored as a second From: field (issue 18).
//
// A message that ends in a lone CR keeps it: "…\r" becomes "…\r\r\n",
// a bare CR the copier refuses, as it refused the unterminated "…\r".
type lastLineTerminator struct {
	r     io.Reader
	read  bool // some bytes came from r
	last  byte // the last of them
	extra string
	done  bool // r has ended; extra is what is left to yield
}

func TerminateLastLine(r io.Reader) io.Reader { return &lastLineTerminator{r: r} }

func (t *lastLineTerminator) Read(p []byte) (int, error) {
	if t.done {
		if len(t.extra) == 0 {
			return 0, io.EOF
		}
		n := copy(p, t.extra)
		t.extra = t.extra[n:]
		return n, nil
	}
	n, err := t.r.Read(p)
	if n > 0 {
		t.read, t.last = true, p[n-1]
	}
	if err == io.EOF { // io.Reader's contract: EOF itself, never wrapped
		// Only a clean end is completed: an abandoned BDAT transfer
		// ends with another error and must stay unfinished.
		t.done = true
		if t.read && t.last != '\n' {
			t.extra = "\r\n"
		}
		if n > 0 {
			return n, nil
		}
		return t.Read(p)
	}
	return n, err
}
