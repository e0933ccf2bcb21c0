package autoconfig

import (
	"errors"
	"strings"
)

// Limits of an address taken from a request (RFC 5321 §4.5.3.1.1 and
// §4.5.3.1.2, and the 254-octet path that fits a 256-octet reverse-path).
const (
	maxLocalPart = 64
	maxDomain    = 253
	maxAddress   = 254
)

var errBadAddress = errors.New("not a plain mail address")

// parseAddress checks an address given by a client (the emailaddress query,
// the autodiscover EMailAddress, the Apple profile's path) and returns its
// local part and its lower-cased domain. Only the common form is accepted:
// a dot-atom local part (RFC 5322 §3.2.3) and a host name; quoted local parts,
// address literals and comments are refused, as no mail client needs them to
// be configured. What passes may still hold & and ' (atext), so every output
// escapes it.
func parseAddress(s string) (local, domain string, err error) {
	if len(s) > maxAddress {
		return "", "", errBadAddress
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return "", "", errBadAddress
	}
	local, domain = s[:at], strings.ToLower(s[at+1:])
	if len(local) > maxLocalPart || !isDotAtom(local) || !isHostName(domain) {
		return "", "", errBadAddress
	}
	return local, domain, nil
}

// isDotAtom reports whether s is 1*atext *("." 1*atext) (RFC 5322 §3.2.3).
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && !isAtext(c) {
			return false
		}
	}
	return true
}

func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// isHostName reports whether s is a DNS host name: dot-separated labels of
// letters, digits and inner hyphens, 1 to 63 octets each, at least two
// labels (RFC 1123 §2.1), no trailing dot. s must be lower-case.
func isHostName(s string) bool {
	if len(s) > maxDomain || !strings.Contains(s, ".") {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
