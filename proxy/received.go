package proxy

import (
	"crypto/tls"
	"fmt"
	"strings"
	"time"
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

// receivedInfo is what the Received header may say about one message.
type receivedInfo struct {
	mode      ReceivedMode
	by        string // Postern's hostname
	id        string // message id, also in the log line
	helo      string // client EHLO name (full mode only)
	clientIP  string // client address (full mode only)
	tls       *tls.ConnectionState
	authed    bool
	recipient string // the only recipient, if there is exactly one (full mode)
	now       time.Time
}

// receivedHeader returns the header (with CRLF line endings, folded) or nil
// in mode none. RFC 5321 §4.4 gives the clauses; "with" takes the RFC 3848
// protocol names (ESMTPSA: TLS and AUTH).
func receivedHeader(ri receivedInfo) []byte {
	if ri.mode == ReceivedNone {
		return nil
	}
	proto := "ESMTP"
	if ri.tls != nil {
		proto += "S"
	}
	if ri.authed {
		proto += "A"
	}
	var b strings.Builder
	b.WriteString("Received: from ")
	if ri.mode == ReceivedFull {
		fmt.Fprintf(&b, "%s ([%s])", sanitizeHeaderToken(ri.helo), ri.clientIP)
	} else {
		b.WriteString("[127.0.0.1] (localhost [127.0.0.1])")
	}
	fmt.Fprintf(&b, "\r\n\tby %s (Postern) with %s id %s", ri.by, proto, ri.id)
	if ri.mode == ReceivedFull && ri.tls != nil {
		fmt.Fprintf(&b, "\r\n\t(using %s with cipher %s)",
			tls.VersionName(ri.tls.Version), tls.CipherSuiteName(ri.tls.CipherSuite))
	}
	if ri.mode == ReceivedFull && ri.recipient != "" {
		fmt.Fprintf(&b, "\r\n\tfor <%s>", sanitizeHeaderToken(ri.recipient))
	}
	fmt.Fprintf(&b, ";\r\n\t%s\r\n", ri.now.Format(time.RFC1123Z))
	return []byte(b.String())
}

// sanitizeHeaderToken keeps client-supplied text (EHLO name, address) from
// breaking the header: no control characters, no parentheses or brackets.
func sanitizeHeaderToken(s string) string {
	if s == "" {
		return "unknown"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x21 || r == 0x7f || r == '(' || r == ')' || r == '[' || r == ']' || r == ';' {
			return '_'
		}
		return r
	}, s)
}
