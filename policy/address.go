package policy

import (
	"errors"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Address is an envelope mailbox (RFC 5321 §4.1.2 Mailbox): the local part
// unquoted, as the mailbox owner sees it, and the domain.
//
// go-smtp hands a session the path with the quoting removed: for
// MAIL FROM:<"ceo@bank.com> ENVID=x"@example.net> it passes
// `ceo@bank.com> ENVID=x@example.net`. Sending that string on as it is lets
// the upstream read a different sender and extra parameters. So a session
// parses it back (ParseAddress: the domain is what follows the last "@",
// since a domain never contains one) and sends on String(), which quotes
// the local part again where RFC 5321 needs it.
type Address struct {
	local  string // unquoted, case preserved (RFC 5321 §2.4)
	domain string // host name as the client wrote it (U-labels as A-labels), or "[literal]"
}

// RFC 5321 §4.5.3.1.1 and §4.5.3.1.3: a local part is at most 64 octets,
// and a path at most 256 octets with its angle brackets, so a mailbox at
// most 254. Both are measured in the serialised form sent upstream.
const (
	maxLocalPartLen = 64
	maxMailboxLen   = 254
)

var (
	errAddrSyntax   = errors.New("address: no local part or domain")
	errAddrLocal    = errors.New("address: local part has a character that cannot be sent")
	errAddrDomain   = errors.New("address: not a domain name or address literal")
	errAddrUTF8     = errors.New("address: non-ASCII without SMTPUTF8")
	errAddrTooLong  = errors.New("address: longer than RFC 5321 allows")
	errAddrNotValid = errors.New("address: invalid UTF-8")
)

// ParseAddress parses the mailbox go-smtp passed to Session.Mail or Rcpt.
// smtputf8 says whether the client gave SMTPUTF8 on MAIL; only then may
// the address have non-ASCII characters (RFC 6531 §3.3). It refuses what
// cannot be sent on safely: control characters (RFC 5321 qtextSMTP and
// quoted-pairSMTP are %d32-126 only), an empty local part, a domain that is
// not a host name or an IPv4/IPv6 address literal, and over-long addresses.
// Source routes (@a,@b:user@d) never get here: go-smtp drops them, as
// RFC 5321 §4.1.2 (Appendix C) allows.
func ParseAddress(s string, smtputf8 bool) (Address, error) {
	if !utf8.ValidString(s) {
		return Address{}, errAddrNotValid
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return Address{}, errAddrSyntax
	}
	a := Address{local: s[:at], domain: s[at+1:]}
	for _, r := range a.local {
		switch {
		case r < 0x20 || r == 0x7f:
			return Address{}, errAddrLocal
		case r >= 0x80 && !smtputf8:
			return Address{}, errAddrUTF8
		case r >= 0x80 && (r <= 0x9f || r == utf8.RuneError):
			return Address{}, errAddrLocal // C1 controls
		}
	}
	d, err := checkDomain(a.domain, smtputf8)
	if err != nil {
		return Address{}, err
	}
	a.domain = d
	if len(a.quotedLocal()) > maxLocalPartLen || len(a.String()) > maxMailboxLen {
		return Address{}, errAddrTooLong
	}
	return a, nil
}

// checkDomain accepts a host name (RFC 5321 Domain; with SMTPUTF8 also
// U-labels, RFC 6531 §3.3, checked by IDNA2008 lookup rules) or an address
// literal [IPv4] / [IPv6:...] (RFC 5321 §4.1.3), and returns it as it is to
// be sent on. A name with U-labels goes on as A-labels: the very name the
// ownership check used, whatever mapping IDNA applied (a full-width dot,
// say), so the upstream cannot read another domain into it. General address
// literals (tag:content) are refused: no MTA Postern fronts routes them.
func checkDomain(d string, smtputf8 bool) (string, error) {
	if strings.HasPrefix(d, "[") {
		if !strings.HasSuffix(d, "]") {
			return "", errAddrDomain
		}
		lit := d[1 : len(d)-1]
		if v6, ok := cutPrefixFold(lit, "IPv6:"); ok {
			ip, err := netip.ParseAddr(v6)
			if err != nil || !ip.Is6() || ip.Zone() != "" || ip.Is4In6() {
				return "", errAddrDomain
			}
			return "[IPv6:" + ip.String() + "]", nil
		}
		ip, err := netip.ParseAddr(lit)
		if err != nil || !ip.Is4() {
			return "", errAddrDomain
		}
		return "[" + ip.String() + "]", nil
	}
	for i := 0; i < len(d); i++ {
		if d[i] < 0x80 {
			continue
		}
		if !smtputf8 {
			return "", errAddrUTF8
		}
		a, err := idna.Lookup.ToASCII(d)
		if err != nil {
			return "", errAddrDomain
		}
		d = a
		break
	}
	return d, checkLDH(d)
}

// checkLDH checks an ASCII host name: dot-separated labels of letters,
// digits and inner hyphens, 1-63 octets each (RFC 5321 sub-domain,
// RFC 1035 §2.3.4), with no trailing dot.
func checkLDH(d string) error {
	if d == "" || len(d) > 253 {
		return errAddrDomain
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return errAddrDomain
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return errAddrDomain
			}
		}
	}
	return nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// String is the mailbox as it goes on the wire (RFC 5321 §4.1.2): the local
// part as a Dot-string when it is one, else as a Quoted-string with `"` and
// `\` escaped. Outside the quotes it has no space, `<`, `>` or control
// character, so the upstream reads exactly this mailbox and no parameter.
func (a Address) String() string {
	return a.quotedLocal() + "@" + a.domain
}

func (a Address) quotedLocal() string {
	if isDotString(a.local) {
		return a.local
	}
	var b strings.Builder
	b.Grow(len(a.local) + 2)
	b.WriteByte('"')
	for i := 0; i < len(a.local); i++ {
		if c := a.local[i]; c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(a.local[i])
	}
	b.WriteByte('"')
	return b.String()
}

// isDotString reports whether s is an RFC 5321 Dot-string: atoms of atext
// (RFC 5322 §3.2.3; with SMTPUTF8 also non-ASCII, RFC 6531 §3.3) joined by
// single dots.
func isDotString(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c >= 0x80:
		case strings.IndexByte("!#$%&'*+-/=?^_`{|}~.", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// ownerKeys are the sender map keys for a: the mailbox, then "@domain".
// Domains compare case-insensitively (RFC 5321 §2.4). The local part is
// compared in its serialised form and case-insensitively too: RFC 5321
// §2.4 leaves its case to the host that owns the mailbox, which here is the
// upstream Postfix, and Postfix folds the keys of its lookup tables
// (smtpd_sender_login_maps included); forwarding keeps the case as sent.
func (a Address) ownerKeys() (full, domain string) {
	d := strings.ToLower(a.domain)
	return strings.ToLower(a.quotedLocal()) + "@" + d, "@" + d
}
