package policy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestParseAddress: what go-smtp passes a session (the path unquoted) and
// what Postern sends on.
func TestParseAddress(t *testing.T) {
	tests := []struct {
		in       string
		smtputf8 bool
		want     string // serialised; "" = refused
		err      error
	}{
		{"alice@example.org", false, "alice@example.org", nil},
		{"Alice.Smith+tag@Example.ORG", false, "Alice.Smith+tag@Example.ORG", nil}, // case kept
		{"john smith@example.net", false, `"john smith"@example.net`, nil},
		{`a"b\c@example.net`, false, `"a\"b\\c"@example.net`, nil},
		{".lead@example.net", false, `".lead"@example.net`, nil},
		{"a..b@example.net", false, `"a..b"@example.net`, nil},
		// The forgeries of issue 9: quoted local parts with '@', '>' and
		// parameters stay inside the quotes.
		{"ceo@bank.com> ENVID=x@example.net", false, `"ceo@bank.com> ENVID=x"@example.net`, nil},
		{"v@x> NOTIFY=NEVER@example.net", false, `"v@x> NOTIFY=NEVER"@example.net`, nil},
		{"ceo@bank.com@example.net", false, `"ceo@bank.com"@example.net`, nil},
		{"<>@example.net", false, `"<>"@example.net`, nil},
		// Address literals.
		{"u@[192.0.2.1]", false, "u@[192.0.2.1]", nil},
		{"u@[IPv6:2001:DB8::1]", false, "u@[IPv6:2001:db8::1]", nil},
		{"u@[192.0.2.1", false, "", errAddrDomain},
		{"u@[2001:db8::1]", false, "", errAddrDomain},
		{"u@[IPv6:192.0.2.1]", false, "", errAddrDomain},
		{"u@[x:y]", false, "", errAddrDomain},
		// Domains go-smtp lets through.
		{"u@example.net>", false, "", errAddrDomain},
		{`u@exam"ple.net`, false, "", errAddrDomain},
		{"u@example..net", false, "", errAddrDomain},
		{"u@-example.net", false, "", errAddrDomain},
		{"u@example.net.", false, "", errAddrDomain},
		{"u@exa_mple.net", false, "", errAddrDomain},
		{"u@", false, "", errAddrSyntax},
		{"@example.net", false, "", errAddrSyntax},
		{"nodomain", false, "", errAddrSyntax},
		// Controls are never sent on, quoted or not.
		{"a\x00b@example.net", false, "", errAddrLocal},
		{"a\rb@example.net", false, "", errAddrLocal},
		{"a\tb@example.net", false, "", errAddrLocal},
		{"a\x7fb@example.net", false, "", errAddrLocal},
		{"a\u0085b@example.net", true, "", errAddrLocal},
		{"u@exa\x00mple.net", false, "", errAddrDomain},
		{"a\xffb@example.net", true, "", errAddrNotValid},
		// SMTPUTF8 (RFC 6531): only when the client gave it; IDN domains go
		// on as A-labels.
		{"jörg@example.test", false, "", errAddrUTF8},
		{"jörg@example.test", true, "jörg@example.test", nil},
		{"jörg smith@example.test", true, `"jörg smith"@example.test`, nil},
		{"u@bücher.example", false, "", errAddrUTF8},
		{"u@bücher.example", true, "u@xn--bcher-kva.example", nil},
		{"u@BÜCHER.example", true, "u@xn--bcher-kva.example", nil},
		{"u@example\uff0enet", true, "u@example.net", nil}, // full-width dot mapped, sent mapped
		// Lengths (RFC 5321 §4.5.3.1): 64 octets of local part, 254 of mailbox.
		{strings.Repeat("a", 64) + "@example.net", false, strings.Repeat("a", 64) + "@example.net", nil},
		{strings.Repeat("a", 65) + "@example.net", false, "", errAddrTooLong},
		{strings.Repeat("a", 61) + " @example.net", false, `"` + strings.Repeat("a", 61) + ` "@example.net`, nil},
		{strings.Repeat("a", 62) + " @example.net", false, "", errAddrTooLong}, // 63 octets, 65 with the quotes
		{"u@" + strings.Repeat("a.", 125) + "net", false, "", errAddrTooLong},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q/%v", tt.in, tt.smtputf8), func(t *testing.T) {
			a, err := ParseAddress(tt.in, tt.smtputf8)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("accepted as %q, want %v", a.String(), tt.err)
				}
				if !errors.Is(err, tt.err) {
					t.Fatalf("err %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if got := a.String(); got != tt.want {
				t.Fatalf("serialised %q, want %q", got, tt.want)
			}
		})
	}
}

// TestMayUseParsedAddress: ownership is checked on the parsed address, so a
// domain owner's quoted local part stays in that domain and cannot name
// another domain's address.
func TestMayUseParsedAddress(t *testing.T) {
	m, err := ParseSenderMap(strings.NewReader(
		"@example.net admin@example.org\n@bücher.example buch@example.org\nceo@bank.com ceo@bank.com\n"), "map")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		login, from string
		want        bool
	}{
		{"admin@example.org", "ceo@bank.com> ENVID=x@example.net", true}, // sent quoted, in example.net
		{"admin@example.org", "john smith@example.net", true},
		{"admin@example.org", "ceo@bank.com", false},
		{"ceo@bank.com", `ceo@bank.com`, true},
		{"admin@example.org", "u@EXAMPLE.net", true},
		{"buch@example.org", "u@BÜCHER.example", true},
		{"buch@example.org", "u@xn--bcher-kva.example", true},
		{"admin@example.org", "", true}, // the null sender, as Postfix
	} {
		if got := MayUse(m, []string{tt.login}, nil, testAddr(t, tt.from)); got != tt.want {
			t.Errorf("MayUse(%q, %q) = %v, want %v", tt.login, tt.from, got, tt.want)
		}
	}
}

// FuzzAddress checks the properties the forwarding relies on for any input
// go-smtp may pass: the serialised form is safe on a command line (no space,
// '<', '>', control or bare quote outside a quoted string), an RFC 5321
// reader (as the upstream is) reads back exactly the parsed mailbox and
// nothing after it, and parsing what go-smtp would pass for the serialised
// form gives the same address again.
func FuzzAddress(f *testing.F) {
	for _, s := range []string{"alice@example.org", "john smith@example.net",
		"ceo@bank.com> ENVID=x@example.net", `a"b\c@[192.0.2.1]`, "jörg@bücher.example"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, in string, smtputf8 bool) {
		a, err := ParseAddress(in, smtputf8)
		if err != nil {
			return
		}
		w := a.String()
		if len(w) > maxMailboxLen {
			t.Fatalf("%q: serialised %d octets", in, len(w))
		}
		local, domain, err := readMailbox(w)
		if err != nil {
			t.Fatalf("%q: serialised %q: upstream would not read it: %v", in, w, err)
		}
		if local != a.local || domain != a.domain {
			t.Fatalf("%q: serialised %q reads as %q @ %q, parsed %q @ %q", in, w, local, domain, a.local, a.domain)
		}
		b, err := ParseAddress(local+"@"+domain, smtputf8)
		if err != nil || b != a || b.String() != w {
			t.Fatalf("%q: not stable: %+v %v, want %+v", in, b, err, a)
		}
	})
}

// readMailbox is an RFC 5321 §4.1.2 Mailbox reader for the tests, as an
// upstream reads the text between '<' and '>': a Dot-string or a
// Quoted-string, '@', then a domain that ends the text. It returns the
// unquoted local part.
func readMailbox(w string) (local, domain string, err error) {
	var b strings.Builder
	i := 0
	if strings.HasPrefix(w, `"`) {
		for i = 1; ; i++ {
			if i >= len(w) {
				return "", "", errors.New("unterminated quoted-string")
			}
			c := w[i]
			if c < 0x20 || c == 0x7f {
				return "", "", errors.New("control in quoted-string")
			}
			if c == '\\' {
				i++
				if i >= len(w) || w[i] < 0x20 || w[i] == 0x7f {
					return "", "", errors.New("bad quoted-pair")
				}
				b.WriteByte(w[i])
				continue
			}
			if c == '"' {
				i++
				break
			}
			b.WriteByte(c)
		}
	} else {
		for ; i < len(w) && w[i] != '@'; i++ {
			b.WriteByte(w[i])
		}
		if !isDotString(b.String()) {
			return "", "", fmt.Errorf("local part %q is not a dot-string", b.String())
		}
	}
	if i >= len(w) || w[i] != '@' {
		return "", "", errors.New("no '@' after the local part")
	}
	domain = w[i+1:]
	if strings.ContainsAny(domain, " \t<>\"@\\") || strings.ContainsFunc(domain, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", "", fmt.Errorf("domain %q has a character that ends or breaks the path", domain)
	}
	return b.String(), domain, nil
}
