package policy

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"golang.org/x/net/idna"
)

// SenderMap says which logins may use which envelope sender addresses. It
// reads the text source of a Postfix smtpd_sender_login_maps table
// (postconf(5), reject_sender_login_mismatch):
//
//	# address              owners (logins), separated by commas or spaces
//	alice@example.org      alice@example.org
//	sales@example.org      alice@example.org, bob@example.org
//	@example.net           admin@example.org
//
// Lookups are case-insensitive, as Postfix folds keys for its tables: the
// full address first, then "@domain". A continuation line starts with
// whitespace, as in postmap(1) input.
type SenderMap struct {
	owners map[string][]string // lower-case key → lower-case logins
}

// LoadSenderMap reads a sender map file.
func LoadSenderMap(path string) (*SenderMap, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening sender map: %w", err)
	}
	defer f.Close()
	return ParseSenderMap(f, path)
}

// ParseSenderMap parses the text form of a sender login map; name is used in
// error messages.
func ParseSenderMap(r io.Reader, name string) (*SenderMap, error) {
	m := &SenderMap{owners: make(map[string][]string)}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var entry string
	entryLine, lineNo := 0, 0
	flush := func() error {
		if entry == "" {
			return nil
		}
		key, value, _ := strings.Cut(strings.TrimSpace(entry), " ")
		if k, v, ok := strings.Cut(key, "\t"); ok {
			key, value = k, v+" "+value
		}
		key = NormalizeMapKey(key)
		logins := strings.FieldsFunc(strings.ToLower(value), func(r rune) bool {
			return r == ',' || r == ' ' || r == '\t'
		})
		switch {
		case len(logins) == 0:
			return fmt.Errorf("%s:%d: %q has no owner", name, entryLine, key)
		case key == "@" || strings.Count(key, "@") > 1 || strings.HasSuffix(key, "@"):
			return fmt.Errorf("%s:%d: %q is not an address or @domain", name, entryLine, key)
		}
		if _, dup := m.owners[key]; dup {
			return fmt.Errorf("%s:%d: %q is listed twice", name, entryLine, key)
		}
		m.owners[key] = logins
		entry = ""
		return nil
	}
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if strings.ContainsRune(line, 0) {
			return nil, fmt.Errorf("%s:%d: NUL byte", name, lineNo)
		}
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if entry == "" {
				return nil, fmt.Errorf("%s:%d: continuation line without an entry", name, lineNo)
			}
			entry += " " + trimmed
			continue
		}
		if err := flush(); err != nil {
			return nil, err
		}
		entry, entryLine = trimmed, lineNo
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return m, nil
}

// NormalizeMapKey lower-cases a key and writes an internationalised domain
// in A-labels, the form ParseAddress gives such a domain.
func NormalizeMapKey(key string) string {
	key = strings.ToLower(key)
	at := strings.LastIndexByte(key, '@')
	if at < 0 {
		return key
	}
	if d, err := idna.Lookup.ToASCII(key[at+1:]); err == nil {
		key = key[:at+1] + d
	}
	return key
}

// Len is the number of entries.
func (m *SenderMap) Len() int { return len(m.owners) }

// Owners returns the logins that own address (full address first, then
// @domain), or nil when the map has no entry for it.
func (m *SenderMap) Owners(address string) []string {
	if m == nil {
		return nil
	}
	address = NormalizeMapKey(address)
	if owners, ok := m.owners[address]; ok {
		return owners
	}
	if at := strings.LastIndexByte(address, '@'); at >= 0 {
		return m.owners[address[at:]]
	}
	return nil
}

// MayUse reports whether the account known by logins may send with the
// envelope sender from, parsed by ParseAddress; nil is the null sender
// (bounces, read receipts), allowed for every login, as Postfix's
// reject_sender_login_mismatch does not check it either. logins are the
// account's canonical identity and the further names its backend stores
// (auth.Result.Names), never the spelling the client typed: the same for
// every spelling, so typing another one gains nothing. An account owns each
// of its names that is an address; beyond that the sender map (lines naming
// any of its names) and the addresses the auth backend returned (e.g. LDAP
// mail and alias attributes) grant addresses. The check is on the parsed
// address, in the form it is sent upstream (see address.ownerKeys for
// case), so what is checked is what the upstream reads.
func MayUse(m *SenderMap, logins []string, backendAddrs []string, from *Address) bool {
	if from == nil {
		return true
	}
	full, domain := from.ownerKeys()
	if slices.ContainsFunc(logins, func(l string) bool { return strings.EqualFold(full, l) }) {
		return true
	}
	for _, a := range backendAddrs {
		if strings.EqualFold(a, full) {
			return true
		}
	}
	owners, ok := m.lookup(full)
	if !ok {
		owners, _ = m.lookup(domain)
	}
	for _, owner := range owners {
		if slices.ContainsFunc(logins, func(l string) bool { return strings.EqualFold(owner, l) }) {
			return true
		}
	}
	return false
}

func (m *SenderMap) lookup(key string) ([]string, bool) {
	if m == nil {
		return nil, false
	}
	owners, ok := m.owners[key]
	return owners, ok
}
