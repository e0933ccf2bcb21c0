package policy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
)

// HeaderFromMode is --check-header-from: whether the From: header's
// addresses must be ones the login owns (the sender map's rules, as for the
// envelope sender).
type HeaderFromMode string

const (
	HeaderFromOff     HeaderFromMode = "off"
	HeaderFromWarn    HeaderFromMode = "warn"    // log line only
	HeaderFromEnforce HeaderFromMode = "enforce" // 553 5.7.1, nothing reaches the upstream
)

// ParseHeaderFromMode parses off|warn|enforce ("" is off).
func ParseHeaderFromMode(s string) (HeaderFromMode, error) {
	switch m := HeaderFromMode(strings.ToLower(s)); m {
	case "", HeaderFromOff:
		return HeaderFromOff, nil
	case HeaderFromWarn, HeaderFromEnforce:
		return m, nil
	}
	return "", fmt.Errorf("--check-header-from %q: want off, warn or enforce", s)
}

// maxHeaderBlock is how much of a message's header section is read before
// deciding on its From: (Postfix's header_size_limit is 102400 too); a
// longer header section is not vouched for (see HeaderBlock).
const maxHeaderBlock = 102400

// HeaderBlock is the start of a message's header section, and whether it
// is the whole section: a block cut at maxHeaderBlock (or at a line too
// long to buffer) may be followed by more header fields, among them a
// second From: the upstream and the recipient's reader would see.
type HeaderBlock struct {
	data     []byte
	complete bool // ended by the empty line, or by the end of the message
}

// ReadHeaderBlock reads the header section of a message from r, up to and
// including the empty line that ends it, or up to maxHeaderBlock bytes, or
// EOF, and returns it with a reader that yields the whole message again
// (the block, then the rest of r). Reading the block before anything goes
// to the upstream is what lets enforce refuse a message the upstream never
// sees. r must be the message as the upstream will get it (its last line
// ended, see TerminateLastLine): the block is judged as it is.
func ReadHeaderBlock(r io.Reader) (block HeaderBlock, whole io.Reader, err error) {
	br := bufio.NewReaderSize(r, 32*1024)
	var buf bytes.Buffer
	for buf.Len() < maxHeaderBlock {
		line, err := br.ReadSlice('\n')
		buf.Write(line)
		if errors.Is(err, bufio.ErrBufferFull) {
			break // an over-long line: the copier refuses it
		}
		if err == io.EOF {
			block.complete = true
			break
		}
		if err != nil {
			return HeaderBlock{}, nil, err
		}
		if isEmptyLine(line) {
			block.complete = true
			break
		}
	}
	block.data = buf.Bytes()
	return block, io.MultiReader(bytes.NewReader(block.data), br), nil
}

// isEmptyLine reports whether line (with its line ending) is the empty
// line that ends a header section: CRLF, or a bare LF, which
// parseHeaderFields also reads as a line ending.
func isEmptyLine(line []byte) bool {
	return string(line) == "\r\n" || string(line) == "\n"
}

// headerField is one field of a header section.
type headerField struct {
	name  string // as written, without the white space before the colon
	value string // the field body after the colon, unfolded
}

// parseHeaderFields splits a header section (up to the empty line that
// ends it, or the end of data) into fields, by RFC 5322 §2.2: a field is a
// name of printable US-ASCII other than the colon, then the colon (white
// space before it is the obsolete syntax of §4.5, still a field to Postfix
// and to readers), then the body, continued on lines that start with white
// space; unfolding (§2.2.3) removes the line breaks and nothing else.
//
// A line ends with CRLF or with a bare LF (as net/textproto, Postfix and
// go-smtp's client read it); a CR anywhere else, a NUL, a line that is
// neither a field nor a continuation, or a continuation with nothing to
// continue is an error: such a section means different fields to different
// readers, and nothing in it is vouched for.
//
// net/mail's header reader does not fit: it skips a line with an empty
// name (": x") where Postfix ends the header section, takes names with
// spaces or 8-bit bytes, trims white space at every fold (RFC 5322 keeps
// it) and needs the section complete and CRLF-ended, so the old check cut
// the block at its last line ending, which was the hole of issue 18.
func parseHeaderFields(data []byte) ([]headerField, error) {
	var fields []headerField
	// The body of the last field, unfolded here and copied once it is
	// whole: adding each continuation line to a string would copy the
	// body again for every line, quadratic in a 100 KiB folded field.
	var body []byte
	endField := func() {
		if len(fields) > 0 {
			fields[len(fields)-1].value = string(body)
		}
	}
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = bytes.TrimSuffix(data[:i], []byte("\r")), data[i+1:]
		} else {
			data = nil // the last line, without its line ending
		}
		if len(line) == 0 {
			break // the empty line: the body follows
		}
		switch {
		case bytes.IndexByte(line, '\r') >= 0:
			return nil, errors.New("bare CR in the header section")
		case bytes.IndexByte(line, 0) >= 0:
			return nil, errors.New("NUL in the header section")
		case line[0] == ' ' || line[0] == '\t':
			if len(fields) == 0 {
				return nil, errors.New("header section starts with a continuation line")
			}
			body = append(body, line...)
			continue
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		name = bytes.TrimRight(name, " \t")
		if !ok || !isFieldName(name) {
			return nil, fmt.Errorf("malformed header line %q", truncate(line, 40))
		}
		endField()
		fields = append(fields, headerField{name: string(name)})
		body = append(body[:0], value...)
	}
	endField()
	return fields, nil
}

// isFieldName reports whether name is an RFC 5322 §3.6.8 field-name: one
// or more printable US-ASCII characters other than the colon.
func isFieldName(name []byte) bool {
	for _, c := range name {
		if c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return len(name) > 0
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// headerFromAddresses returns the author addresses of a header block, the
// ones a reader is shown as who wrote the message: the From: field's
// (exactly one field, RFC 5322 §3.6) and the Sender: field's when there is
// one (at most one; readers show "sender on behalf of from"). The error
// says why there is nothing to vouch for: no From:, two of a field, an
// unparsable field or header section.
func headerFromAddresses(block HeaderBlock) ([]string, error) {
	if !block.complete {
		// The rest of the section is not looked at: it could hold a
		// second From: (RFC 5322 §3.6 allows one), so nothing is vouched for.
		return nil, fmt.Errorf("header section longer than %d bytes", maxHeaderBlock)
	}
	fields, err := parseHeaderFields(block.data)
	if err != nil {
		return nil, fmt.Errorf("reading the header: %w", err)
	}
	var from, sender []string
	for _, f := range fields {
		switch {
		case strings.EqualFold(f.name, "From"):
			from = append(from, f.value)
		case strings.EqualFold(f.name, "Sender"):
			sender = append(sender, f.value)
		}
	}
	switch {
	case len(from) == 0:
		return nil, errors.New("no From: header")
	case len(from) > 1:
		return nil, errors.New("more than one From: header")
	case len(sender) > 1:
		return nil, errors.New("more than one Sender: header")
	}
	out, err := fieldAddresses("From", from[0])
	if err != nil || len(sender) == 0 {
		return out, err
	}
	more, err := fieldAddresses("Sender", sender[0])
	return append(out, more...), err
}

// fieldAddresses parses the body of an address field with net/mail, which
// has the address grammar: comments, quoting, groups, encoded words in
// display names, the obsolete list syntax.
func fieldAddresses(name, value string) ([]string, error) {
	list, err := mail.ParseAddressList(value)
	if err != nil {
		return nil, fmt.Errorf("parsing the %s: header: %w", name, err)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("empty %s: header", name)
	}
	out := make([]string, len(list))
	for i, a := range list {
		out[i] = a.Address
	}
	return out, nil
}

// HeaderFromOwned checks every From: address of block against what logins
// owns; it returns "" when all are owned, else why not (for the log).
func HeaderFromOwned(block HeaderBlock, m *SenderMap, logins []string, backendAddrs []string) (string, []string) {
	addrs, err := headerFromAddresses(block)
	if err != nil {
		return err.Error(), nil
	}
	for _, a := range addrs {
		parsed, err := ParseAddress(a, true)
		if err != nil || !MayUse(m, logins, backendAddrs, &parsed) {
			return "From: or Sender: address not owned by the login", addrs
		}
	}
	return "", addrs
}
