package dovecot

// The wire format of Dovecot's client authentication protocol (Dovecot
// developer docs, "Authentication Protocol", v1.x): one command per LF-ended
// line, fields separated by TAB, optional parameters as `name` or
// `name=value`, and values tab-escaped with \001.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// dovecotMaxLine is the longest line either side is expected to send; the
// spec says lines are "currently expected to fit into 16384 bytes" (8192 in
// v1.1). A longer line from the server means we lost sync with it.
const dovecotMaxLine = 16384

var (
	errDovecotLineTooLong = errors.New("line longer than 16384 bytes")
	errDovecotMalformed   = errors.New("malformed line")
)

// readDovecotLine reads one LF-terminated line without its LF (a CR before it
// is kept: the protocol has no CRLF). It fails on lines over dovecotMaxLine
// instead of buffering whatever the peer sends.
func readDovecotLine(r *bufio.Reader) (string, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > dovecotMaxLine+1 {
			return "", errDovecotLineTooLong
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return string(line[:len(line)-1]), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return "", err
		}
	}
}

// dovecotTabEscape escapes a parameter value the way Dovecot's
// str_append_tabescaped does: \001 is the escape character, followed by '1'
// for \001 itself, 't' for TAB, 'r' for CR, 'n' for LF and '0' for NUL. This
// keeps a hostile value from starting a new parameter or a new command.
func dovecotTabEscape(s string) string {
	if !strings.ContainsAny(s, "\x00\x01\t\r\n") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case 0:
			b.WriteString("\x010")
		case 1:
			b.WriteString("\x011")
		case '\t':
			b.WriteString("\x01t")
		case '\r':
			b.WriteString("\x01r")
		case '\n':
			b.WriteString("\x01n")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// dovecotTabUnescape reverses dovecotTabEscape. As in Dovecot's
// str_append_tabunescaped, an unknown escape yields the character itself and
// a trailing lone \001 is dropped.
func dovecotTabUnescape(s string) string {
	if strings.IndexByte(s, 1) < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != 1 {
			b.WriteByte(c)
			continue
		}
		i++
		if i == len(s) {
			break
		}
		switch s[i] {
		case '0':
			b.WriteByte(0)
		case '1':
			b.WriteByte(1)
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'n':
			b.WriteByte('\n')
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// dovecotReply is a server reply to an AUTH request: OK, FAIL or CONT.
type dovecotReply struct {
	Kind string // "OK", "FAIL" or "CONT"
	ID   uint32
	// Params holds the optional parameters, unescaped; a boolean parameter
	// (e.g. "temp") maps to "". For CONT, Data holds the base64 challenge.
	Params map[string]string
	Data   string
}

// isTempFail reports whether a FAIL is a temporary internal failure: "temp"
// (protocol v1.1: "e.g. connection was lost to SQL database") or
// "code=temp_fail" (v1.2+, AUTH_CLIENT_FAIL_CODE_TEMPFAIL).
func (r dovecotReply) isTempFail() bool {
	if _, ok := r.Params["temp"]; ok {
		return true
	}
	return r.Params["code"] == "temp_fail"
}

// parseDovecotReply parses an OK, FAIL or CONT line. Any other command is an
// error the caller decides about (the protocol lets servers add commands).
func parseDovecotReply(line string) (dovecotReply, error) {
	fields := strings.Split(line, "\t")
	var r dovecotReply
	switch fields[0] {
	case "OK", "FAIL", "CONT":
		r.Kind = fields[0]
	default:
		return r, fmt.Errorf("%w: unexpected command %.32q", errDovecotMalformed, fields[0])
	}
	if len(fields) < 2 {
		return r, fmt.Errorf("%w: %s without an id", errDovecotMalformed, r.Kind)
	}
	id, err := strconv.ParseUint(fields[1], 10, 32)
	if err != nil {
		return r, fmt.Errorf("%w: %s id %.32q: %v", errDovecotMalformed, r.Kind, fields[1], err)
	}
	r.ID = uint32(id)
	rest := fields[2:]
	if r.Kind == "CONT" {
		// "CONT" TAB <id> TAB <base64 data>
		if len(rest) > 0 {
			r.Data = rest[0]
		}
		return r, nil
	}
	r.Params = make(map[string]string, len(rest))
	for _, f := range rest {
		name, value, _ := strings.Cut(f, "=")
		if name == "" {
			continue
		}
		r.Params[name] = dovecotTabUnescape(value)
	}
	return r, nil
}

// dovecotHandshake is what the server announces before DONE.
type dovecotHandshake struct {
	Major, Minor int
	Mechs        map[string]bool // mechanism name → offered
}

// readDovecotHandshake reads the server's handshake up to DONE: VERSION
// first, then SPID, CUID, COOKIE and MECH lines in any order (Dovecot 2.3
// sends MECH before SPID). Unknown lines are ignored, as the spec asks.
func readDovecotHandshake(r *bufio.Reader) (dovecotHandshake, error) {
	h := dovecotHandshake{Mechs: map[string]bool{}}
	sawVersion := false
	for {
		line, err := readDovecotLine(r)
		if err != nil {
			return h, fmt.Errorf("reading handshake: %w", err)
		}
		fields := strings.Split(line, "\t")
		switch fields[0] {
		case "VERSION":
			if len(fields) < 3 {
				return h, fmt.Errorf("%w: VERSION %q", errDovecotMalformed, line)
			}
			if h.Major, err = strconv.Atoi(fields[1]); err != nil {
				return h, fmt.Errorf("%w: VERSION major %.32q", errDovecotMalformed, fields[1])
			}
			h.Minor, _ = strconv.Atoi(fields[2]) // "Minor version can be ignored"
			// Both sides must speak the same major version (spec: "should be
			// disconnected" otherwise).
			if h.Major != 1 {
				return h, fmt.Errorf("unsupported protocol version %d.%d (want 1.x)", h.Major, h.Minor)
			}
			sawVersion = true
		case "MECH":
			if len(fields) >= 2 {
				h.Mechs[strings.ToUpper(fields[1])] = true
			}
		case "DONE":
			if !sawVersion {
				return h, fmt.Errorf("%w: DONE before VERSION", errDovecotMalformed)
			}
			return h, nil
		}
	}
}

// dovecotAuthLine builds an AUTH request line. resp= goes last: the spec says
// everything after it is ignored, so nothing user-controlled can follow it.
func dovecotAuthLine(id uint32, mech string, params []string, resp string) []byte {
	var b bytes.Buffer
	b.WriteString("AUTH\t")
	b.WriteString(strconv.FormatUint(uint64(id), 10))
	b.WriteByte('\t')
	b.WriteString(mech)
	for _, p := range params {
		b.WriteByte('\t')
		b.WriteString(p)
	}
	b.WriteString("\tresp=")
	b.WriteString(resp)
	b.WriteByte('\n')
	return b.Bytes()
}
