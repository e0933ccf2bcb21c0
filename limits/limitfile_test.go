package limits

import (
	"strings"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Rate
		str  string
	}{
		{"200/1h", Rate{200, time.Hour}, "200/1h"},
		{"1000/24h", Rate{1000, 24 * time.Hour}, "1000/24h"},
		{" 5/30m ", Rate{5, 30 * time.Minute}, "5/30m"},
		{"1/1s", Rate{1, time.Second}, "1/1s"},
		{"*", Rate{}, "*"},
	} {
		got, err := ParseRate(tc.in)
		if err != nil || got != tc.want || got.String() != tc.str {
			t.Errorf("ParseRate(%q) = %v %q, %v; want %v %q", tc.in, got, got.String(), err, tc.want, tc.str)
		}
	}
	for _, bad := range []string{"", "200", "/1h", "0/1h", "-1/1h", "200/", "200/0s", "200/500ms", "200/745h", "x/1h", "200/1h/2", "100001/1h", "**"} {
		if r, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) = %v, want an error", bad, r)
		}
	}
}

const sampleLimitFile = `# login or @domain   limits
alice@example.org      messages=500/1h recipients=5000/24h
@Example.NET           messages=50/1h   # the whole domain
newsletter@example.org *
bulk@example.org       messages=* recipients=20000/24h

bob                    recipients=10/1h
`

func TestLimitFileLookup(t *testing.T) {
	lf, err := ParseLimitFile(strings.NewReader(sampleLimitFile), "limits")
	if err != nil {
		t.Fatal(err)
	}
	if lf.Len() != 5 {
		t.Fatalf("Len = %d, want 5", lf.Len())
	}
	l := NewLimits(LimitsConfig{Messages: Rate{200, time.Hour}, Recipients: Rate{1000, 24 * time.Hour}})
	l.SetFile(lf)
	for _, tc := range []struct {
		login      string
		msgs, rcpt string
	}{
		{"alice@example.org", "500/1h", "5000/24h"},
		{"ALICE@Example.org", "500/1h", "5000/24h"},
		{"carol@example.net", "50/1h", "1000/24h"}, // @domain, recipients default
		{"newsletter@example.org", "*", "*"},
		{"bulk@example.org", "*", "20000/24h"},
		{"bob", "200/1h", "10/1h"},
		{"dave@example.org", "200/1h", "1000/24h"}, // not listed
	} {
		m, r := l.Rates(tc.login)
		if m.String() != tc.msgs || r.String() != tc.rcpt {
			t.Errorf("Rates(%s) = %s %s, want %s %s", tc.login, m, r, tc.msgs, tc.rcpt)
		}
	}
	l.SetFile(nil)
	if m, _ := l.Rates("newsletter@example.org"); m.String() != "200/1h" {
		t.Errorf("without a file: %s", m)
	}
}

func TestParseLimitFileErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice\n", "limits:1: alice: no limits"},
		{"alice messages=1/1h\nalice messages=2/1h\n", `limits:2: "alice" is listed twice`},
		{"alice messages=1/1h messages=2/1h\n", "messages given twice"},
		{"alice mails=1/1h\n", "unknown limit"},
		{"alice 5/1h\n", "want messages=N/WINDOW"},
		{"alice messages=lots\n", `rate "lots"`},
		{"@ messages=1/1h\n", "not a login or @domain"},
		{"a@b@c messages=1/1h\n", "not a login or @domain"},
		{"x\x00 *\n", "NUL byte"},
		{"alice * messages=1/1h\n", "want messages=N/WINDOW"},
	} {
		_, err := ParseLimitFile(strings.NewReader(tc.in), "limits")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.want)
		}
	}
}

func FuzzParseLimitFile(f *testing.F) {
	f.Add(sampleLimitFile)
	f.Add("a *\n@b messages=1/1s\n")
	f.Add("a messages=*\r\n")
	f.Fuzz(func(t *testing.T, input string) {
		lf, err := ParseLimitFile(strings.NewReader(input), "fuzz")
		if err != nil {
			return
		}
		// Every entry is found by its own key, and its rates print as
		// rates that parse back to themselves.
		for key, o := range lf.entries {
			if !strings.HasPrefix(key, "@") {
				if _, ok := lf.lookup(key); !ok {
					t.Fatalf("key %q not found", key)
				}
			}
			for _, r := range []*Rate{o.Messages, o.Recipients} {
				if r == nil {
					continue
				}
				back, err := ParseRate(r.String())
				if err != nil || back != *r {
					t.Fatalf("rate %v prints as %q, parses as %v, %v", *r, r.String(), back, err)
				}
			}
		}
	})
}
