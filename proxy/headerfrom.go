package proxy

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
// longer header section is not vouched for (see headerBlock).
const maxHeaderBlock = 102400

// headerBlock is the start of a message's header section, and whether it
// is the whole section: a block cut at maxHeaderBlock (or at a line too
// long to buffer) may be followed by more header fields, among them a
// second From: the upstream and the recipient's reader would see.
type headerBlock struct {
	data     []byte
	complete bool // ended by the empty line, or by the end of the message
}

// readHeaderBlock reads the header section of a message from r, up to and
// including the empty line that ends it, or up to maxHeaderBlock bytes, or
// EOF, and returns it with a reader that yields the whole message again
// (the block, then the rest of r). Reading the block before anything goes
// to the upstream is what lets enforce refuse a message the upstream never
// sees.
func readHeaderBlock(r io.Reader) (block headerBlock, whole io.Reader, err error) {
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
			return headerBlock{}, nil, err
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			block.complete = true
			break
		}
	}
	block.data = buf.Bytes()
	return block, io.MultiReader(bytes.NewReader(block.data), br), nil
}

// headerFromAddresses returns the addresses of the From: header of a
// header block, or an error saying why there is none to check (no From:,
// two From: fields, unparsable).
func headerFromAddresses(block headerBlock) ([]string, error) {
	if !block.complete {
		// The rest of the section is not looked at: it could hold a
		// second From: (RFC 5322 §3.6 allows one), so nothing is vouched for.
		return nil, fmt.Errorf("header section longer than %d bytes", maxHeaderBlock)
	}
	// Only complete lines, ended by an empty one, for net/mail.
	data := block.data
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i+1]
	} else {
		data = nil
	}
	msg, err := mail.ReadMessage(io.MultiReader(bytes.NewReader(data), strings.NewReader("\r\n")))
	if err != nil {
		return nil, fmt.Errorf("reading the header: %w", err)
	}
	// net/mail keeps a field name it cannot canonicalize as it came:
	// "From :" (RFC 5322 §4.5.6 obs-from, white space before the colon)
	// is a From: field to Postfix and to readers, not another field.
	var from []string
	for name, values := range msg.Header {
		if strings.EqualFold(strings.TrimRight(name, " \t"), "From") {
			from = append(from, values...)
		}
	}
	switch n := len(from); {
	case n == 0:
		return nil, errors.New("no From: header")
	case n > 1:
		return nil, errors.New("more than one From: header") // RFC 5322 §3.6: exactly one
	}
	list, err := mail.ParseAddressList(from[0])
	if err != nil {
		return nil, fmt.Errorf("parsing the From: header: %w", err)
	}
	if len(list) == 0 {
		return nil, errors.New("empty From: header")
	}
	out := make([]string, len(list))
	for i, a := range list {
		out[i] = a.Address
	}
	return out, nil
}

// headerFromOwned checks every From: address of block against what logins
// owns; it returns "" when all are owned, else why not (for the log).
func headerFromOwned(block headerBlock, m *SenderMap, logins []string, backendAddrs []string) (string, []string) {
	addrs, err := headerFromAddresses(block)
	if err != nil {
		return err.Error(), nil
	}
	for _, a := range addrs {
		parsed, err := parseAddress(a, true)
		if err != nil || !mayUse(m, logins, backendAddrs, &parsed) {
			return "From: address not owned by the login", addrs
		}
	}
	return "", addrs
}
