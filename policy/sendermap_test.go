package policy

import (
	"strings"
	"testing"
)

const sampleSenderMap = `# Postfix smtpd_sender_login_maps source
alice@example.org      alice@example.org
Sales@Example.org      alice@example.org, bob@example.org
shared@example.org     alice@example.org
	carol@example.org
@example.net           admin@example.org
`

func TestSenderMapOwners(t *testing.T) {
	m, err := ParseSenderMap(strings.NewReader(sampleSenderMap), "map")
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != 4 {
		t.Fatalf("Len = %d, want 4", m.Len())
	}
	tests := []struct {
		login, from string
		want        bool
	}{
		{"alice@example.org", "alice@example.org", true},
		{"ALICE@example.org", "Alice@EXAMPLE.org", true}, // case-insensitive like Postfix tables
		{"bob@example.org", "sales@example.org", true},
		{"bob@example.org", "alice@example.org", false},
		{"carol@example.org", "shared@example.org", true}, // continuation line
		{"admin@example.org", "anyone@example.net", true}, // @domain entry
		{"admin@example.org", "anyone@EXAMPLE.NET", true},
		{"alice@example.org", "anyone@example.net", false},
		{"bob@example.org", "", true},                     // null sender always allowed
		{"bob@example.org", "bob@example.org", true},      // a login owns itself
		{"dave@example.org", "nobody@example.com", false}, // not in the map
	}
	for _, tt := range tests {
		t.Run(tt.login+"->"+tt.from, func(t *testing.T) {
			if got := MayUse(m, []string{tt.login}, nil, testAddr(t, tt.from)); got != tt.want {
				t.Fatalf("MayUse(%q, %q) = %v, want %v", tt.login, tt.from, got, tt.want)
			}
		})
	}
}

// testAddr parses what go-smtp passes a session; "" is the null sender.
func testAddr(t *testing.T, s string) *Address {
	t.Helper()
	if s == "" {
		return nil
	}
	a, err := ParseAddress(s, true)
	if err != nil {
		t.Fatalf("ParseAddress(%q): %v", s, err)
	}
	return &a
}

func TestSenderMapNilAndBackendAddresses(t *testing.T) {
	if !MayUse(nil, []string{"u@example.org"}, nil, testAddr(t, "u@example.org")) {
		t.Fatal("without a map a login must be able to send as itself")
	}
	if MayUse(nil, []string{"u@example.org"}, nil, testAddr(t, "v@example.org")) {
		t.Fatal("without a map a login must not send as another address")
	}
	if !MayUse(nil, []string{"u"}, []string{"alias@example.org"}, testAddr(t, "ALIAS@example.org")) {
		t.Fatal("an address from the auth backend must be usable")
	}
}

func TestParseSenderMapErrors(t *testing.T) {
	tests := []struct{ name, input, want string }{
		{"no owner", "alice@example.org\n", "map:1: \"alice@example.org\" has no owner"},
		{"duplicate", "a@x y\n# c\nA@X z\n", "map:3: \"a@x\" is listed twice"},
		{"bad key", "a@b@c y\n", "map:1: \"a@b@c\" is not an address or @domain"},
		{"lonely continuation", "  y\n", "map:1: continuation line without an entry"},
		{"nul", "a@x y\x00\n", "map:1: NUL byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSenderMap(strings.NewReader(tt.input), "map")
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func FuzzParseSenderMap(f *testing.F) {
	f.Add(sampleSenderMap)
	f.Add("a@x\tb,c\n @y\n")
	f.Add("@\n")
	f.Fuzz(func(t *testing.T, input string) {
		m, err := ParseSenderMap(strings.NewReader(input), "fuzz")
		if err != nil {
			return
		}
		// Every key that parsed must be found again by its own address.
		for key, owners := range m.owners {
			if len(owners) == 0 {
				t.Fatalf("key %q without owners", key)
			}
			if !strings.HasPrefix(key, "@") && len(m.Owners(key)) == 0 {
				t.Fatalf("key %q not found by Owners", key)
			}
		}
	})
}
