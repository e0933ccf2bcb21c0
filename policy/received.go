package policy

import (
	"crypto/tls"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ReceivedMode selects the Received header Postern writes.
type ReceivedMode string

const (
	// ReceivedAnonymous names neither the client's IP address nor its EHLO
	// name, and strips X-Originating-IP (what the ISPmail header_checks
	// recipes do with REPLACE rules, without the regular expressions).
	ReceivedAnonymous ReceivedMode = "anonymous"
	// ReceivedFull writes the usual from-clause with EHLO name and address.
	ReceivedFull ReceivedMode = "full"
	// ReceivedNone writes nothing; the upstream's own header then names only
	// Postern.
	ReceivedNone ReceivedMode = "none"
)

// ParseReceivedMode checks a --received value.
func ParseReceivedMode(s string) (ReceivedMode, error) {
	switch m := ReceivedMode(strings.ToLower(s)); m {
	case ReceivedAnonymous, ReceivedFull, ReceivedNone:
		return m, nil
	}
	return "", fmt.Errorf("received mode %q: want anonymous, full or none", s)
}

// ReceivedInfo is what the Received header may say about one message.
type ReceivedInfo struct {
	Mode     ReceivedMode
	By       string // Postern's hostname
	ID       string // message id, also in the log line
	Helo     string // client EHLO name (full mode only)
	ClientIP string // client address (full mode only)
	TLS      *tls.ConnectionState
	Authed   bool
	Now      time.Time
}

// Line lengths of the header Postern writes (RFC 5322 §2.1.1): lines
// SHOULD be at most 78 characters and MUST be at most 998, CRLF excluded.
// Folding keeps the first where it can; the caps on client-chosen text keep
// the second always.
const (
	headerFoldAt   = 78
	headerMaxLine  = 998
	maxHeloInTrace = 255 // RFC 5321 §4.5.3.1.2: a domain is at most 255 octets
	maxIPInTrace   = 64  // an IPv6 address with a zone, generously
)

// ReceivedHeader returns the header (with CRLF line endings, folded) or nil
// in mode none. RFC 5321 §4.4 gives the clauses; "with" takes the RFC 3848
// protocol names (ESMTPSA: TLS and AUTH). Each clause starts a line; a
// clause longer than headerFoldAt is folded between its words (RFC 5322
// §3.2.2 allows folding whitespace between the tokens of every clause and
// inside comments).
func ReceivedHeader(ri ReceivedInfo) []byte {
	if ri.Mode == ReceivedNone {
		return nil
	}
	proto := "ESMTP"
	if ri.TLS != nil {
		proto += "S"
	}
	if ri.Authed {
		proto += "A"
	}
	var clauses [][]string
	if ri.Mode == ReceivedFull {
		ip := ri.ClientIP
		if len(ip) > maxIPInTrace {
			ip = "" // not an address; traceToken writes "unknown"
		}
		clauses = append(clauses, []string{"Received:", "from", traceHelo(ri.Helo), "([" + traceToken(ip) + "])"})
	} else {
		clauses = append(clauses, strings.Fields("Received: from [127.0.0.1] (localhost [127.0.0.1])"))
	}
	clauses = append(clauses, []string{"by", traceHelo(ri.By), "(Postern)", "with", proto, "id", traceToken(ri.ID)})
	if ri.Mode == ReceivedFull && ri.TLS != nil {
		clauses = append(clauses, strings.Fields(fmt.Sprintf("(using %s with cipher %s)",
			tls.VersionName(ri.TLS.Version), tls.CipherSuiteName(ri.TLS.CipherSuite))))
	}
	last := clauses[len(clauses)-1]
	last[len(last)-1] += ";"
	clauses = append(clauses, strings.Fields(ri.Now.Format(time.RFC1123Z)))
	return foldHeader(clauses)
}

// foldHeader writes clauses as one header: words joined by a space, each
// clause after the first on a new line starting with a tab, and a line
// broken before a word that would take it past headerFoldAt. A word is
// never split, so a line exceeds headerFoldAt only for a word that long,
// which the callers' caps keep far below headerMaxLine.
func foldHeader(clauses [][]string) []byte {
	var b strings.Builder
	lineLen := 0
	for i, clause := range clauses {
		if i > 0 {
			b.WriteString("\r\n\t")
			lineLen = 1
		}
		for j, word := range clause {
			if len(word) > headerMaxLine-1 { // only if a cap above was missed
				word = strings.ToValidUTF8(word[:headerMaxLine-1], "")
			}
			switch {
			case j == 0:
			case lineLen+1+len(word) > headerFoldAt:
				b.WriteString("\r\n\t")
				lineLen = 1
			default:
				b.WriteByte(' ')
				lineLen++
			}
			b.WriteString(word)
			lineLen += len(word)
		}
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// traceHelo makes the client's EHLO name safe for the header: go-smtp takes
// whatever precedes the first space of the EHLO line (up to ~2000 bytes,
// control characters, parentheses and bare CR included), so only the
// characters of a domain or address literal are kept (the rest become "_")
// and a name longer than a domain can be is cut, marked with "...".
func traceHelo(helo string) string {
	if helo == "" {
		return "unknown"
	}
	if len(helo) > maxHeloInTrace {
		helo = helo[:maxHeloInTrace-3] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '.' || r == ':' || r == '_' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' {
			return r
		}
		return '_'
	}, helo)
}

// traceToken keeps other text (an address, the hostname) from breaking the
// header: no spaces or control characters (so no CR or LF, and no folding
// inside the token), no parentheses, brackets, angle brackets, quotes,
// backslashes or semicolons (which would unbalance a comment or end the
// clauses early). Valid UTF-8 letters of an SMTPUTF8 address stay.
func traceToken(s string) string {
	if s == "" {
		return "unknown"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x21 || r == 0x7f || r == utf8.RuneError || unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune("()[]<>;\\\"", r) {
			return '_'
		}
		return r
	}, s)
}
