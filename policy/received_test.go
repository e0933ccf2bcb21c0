package policy

import (
	"crypto/tls"
	"net/mail"
	"strings"
	"testing"
	"time"
)

func TestReceivedHeader(t *testing.T) {
	now := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	state := &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256}
	base := ReceivedInfo{By: "mail.example.org", ID: "ID1", Helo: "home-pc.lan", ClientIP: "198.51.100.23",
		TLS: state, Authed: true, Now: now}

	anon := base
	anon.Mode = ReceivedAnonymous
	got := string(ReceivedHeader(anon))
	want := "Received: from [127.0.0.1] (localhost [127.0.0.1])\r\n\tby mail.example.org (Postern) with ESMTPSA id ID1;\r\n\tWed, 25 Nov 2026 08:00:00 +0000\r\n"
	if got != want {
		t.Fatalf("anonymous:\n got %q\nwant %q", got, want)
	}
	for _, leak := range []string{"198.51.100.23", "home-pc"} {
		if strings.Contains(got, leak) {
			t.Fatalf("anonymous header leaks %q", leak)
		}
	}

	full := base
	full.Mode = ReceivedFull
	got = string(ReceivedHeader(full))
	want = "Received: from home-pc.lan ([198.51.100.23])\r\n\tby mail.example.org (Postern) with ESMTPSA id ID1\r\n\t(using TLS 1.3 with cipher TLS_AES_128_GCM_SHA256);\r\n\tWed, 25 Nov 2026 08:00:00 +0000\r\n"
	if got != want {
		t.Fatalf("full:\n got %q\nwant %q", got, want)
	}

	full.Helo = "evil)\r\nX-Injected: 1"
	if got := string(ReceivedHeader(full)); strings.Contains(got, "\r\nX-Injected") {
		t.Fatalf("EHLO name injected a header: %q", got)
	}

	none := base
	none.Mode = ReceivedNone
	if h := ReceivedHeader(none); h != nil {
		t.Fatalf("none: got %q", h)
	}

	plain := base
	plain.Mode, plain.TLS, plain.Authed = ReceivedAnonymous, nil, false
	if got := string(ReceivedHeader(plain)); !strings.Contains(got, "with ESMTP id") {
		t.Fatalf("no TLS, no auth: %q", got)
	}
}

func TestParseReceivedMode(t *testing.T) {
	for _, s := range []string{"anonymous", "FULL", "none"} {
		if _, err := ParseReceivedMode(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	if _, err := ParseReceivedMode("partial"); err == nil {
		t.Error("partial accepted")
	}
}

func TestParseNetworks(t *testing.T) {
	nets, err := ParseNetworks("127.0.0.0/8, 192.0.2.1 [2001:db8::]/32")
	if err != nil {
		t.Fatal(err)
	}
	if len(nets) != 3 {
		t.Fatalf("got %v", nets)
	}
	if _, err := ParseNetworks("300.1.1.1"); err == nil {
		t.Fatal("bad address accepted")
	}
}

// checkHeaderLines fails unless h is one well-formed header field: CRLF
// line ends and no other CR or LF, every line at most 998 octets (RFC 5322
// §2.1.1), continuation lines starting with whitespace, balanced comment
// parentheses, and net/mail parsing it as a single Received field.
func checkHeaderLines(t testing.TB, h []byte) {
	t.Helper()
	s := string(h)
	if !strings.HasPrefix(s, "Received: ") || !strings.HasSuffix(s, "\r\n") {
		t.Fatalf("not a Received header ending in CRLF: %q", s)
	}
	lines := strings.Split(strings.TrimSuffix(s, "\r\n"), "\r\n")
	for i, line := range lines {
		if strings.ContainsAny(line, "\r\n") {
			t.Fatalf("line %d has a bare CR or LF: %q", i, line)
		}
		if len(line) > 998 {
			t.Fatalf("line %d is %d octets, over 998", i, len(line))
		}
		if i > 0 && (line == "" || (line[0] != ' ' && line[0] != '\t')) {
			t.Fatalf("continuation line %d does not start with whitespace: %q", i, line)
		}
		if i > 0 && strings.TrimLeft(line, " \t") == "" {
			t.Fatalf("continuation line %d is only whitespace", i)
		}
	}
	depth := 0
	for _, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		}
		if depth < 0 {
			t.Fatalf("')' closes no comment: %q", s)
		}
	}
	if depth != 0 {
		t.Fatalf("unclosed comment: %q", s)
	}
	msg, err := mail.ReadMessage(strings.NewReader(s + "\r\nbody\r\n"))
	if err != nil {
		t.Fatalf("net/mail cannot read the header: %v\n%q", err, s)
	}
	if len(msg.Header) != 1 || len(msg.Header["Received"]) != 1 {
		t.Fatalf("parsed as %d fields (%v), want one Received", len(msg.Header), msg.Header)
	}
}

func TestReceivedHeaderLongEHLO(t *testing.T) {
	state := &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256}
	ri := ReceivedInfo{Mode: ReceivedFull, By: "mail.example.org", ID: "ID1", ClientIP: "2001:db8::1",
		TLS: state, Authed: true, Now: time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)}
	ri.Helo = strings.Repeat("a", 1990) // the EHLO of the report: 1,990 characters
	h := ReceivedHeader(ri)
	checkHeaderLines(t, h)
	for _, line := range strings.Split(string(h), "\r\n") {
		if len(line) > maxHeloInTrace+1 {
			t.Errorf("line of %d octets: %.40q...", len(line), line)
		}
	}
	if want := "\r\n\t" + strings.Repeat("a", maxHeloInTrace-3) + "...\r\n\t([2001:db8::1])\r\n"; !strings.Contains(string(h), want) {
		t.Errorf("the cut EHLO name is not on its own line, followed by the address:\n%s", h)
	}
}

func TestReceivedHeaderHostileEHLO(t *testing.T) {
	for _, helo := range []string{
		"evil)\r\nX-Injected: 1", "a\rb", "a\nb", "x)(y", "((((", "))))", "[192.0.2.1]", "x\\)y", "tab\there",
		"\"quoted\"", "semi;colon", "m\xfcnchen.de", "ümlaut.example", "\x00nul", "<angle>", "a\r\n\r\nBody:",
	} {
		ri := ReceivedInfo{Mode: ReceivedFull, By: "mail.example.org", ID: "ID1", Helo: helo, ClientIP: "198.51.100.23",
			Now: time.Now()}
		h := ReceivedHeader(ri)
		checkHeaderLines(t, h)
		first, _, _ := strings.Cut(string(h), "\r\n")
		name := strings.TrimSuffix(strings.TrimPrefix(first, "Received: from "), " ([198.51.100.23])")
		for _, c := range name {
			if !(c == '-' || c == '.' || c == ':' || c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
				t.Errorf("EHLO %q written as %q", helo, name)
				break
			}
		}
	}
}

// FuzzReceivedHeader: whatever the client chose as EHLO name and address,
// the header is one field, with lines of at most 998 octets ending in CRLF,
// continuation lines starting with whitespace, and balanced comments.
func FuzzReceivedHeader(f *testing.F) {
	f.Add("home-pc.lan", "198.51.100.23", true)
	f.Add(strings.Repeat("a", 1990), "2001:db8::1", true)
	f.Add("evil)\r\nX-Injected: 1", "1.2.3.4", false)
	f.Add("a b c", "::1", true)
	f.Add("", "", false)
	f.Fuzz(func(t *testing.T, helo, ip string, withTLS bool) {
		ri := ReceivedInfo{Mode: ReceivedFull, By: "mail.example.org", ID: "ID1", Helo: helo, ClientIP: ip,
			Authed: true, Now: time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)}
		if withTLS {
			ri.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256}
		}
		checkHeaderLines(t, ReceivedHeader(ri))
	})
}
