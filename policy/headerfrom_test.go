package policy

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestReadHeaderBlock(t *testing.T) {
	msg := "From: a@x\r\nSubject: s\r\n\r\nbody\r\nFrom: b@y\r\n"
	block, whole, err := ReadHeaderBlock(strings.NewReader(msg))
	if err != nil || !block.complete || string(block.data) != "From: a@x\r\nSubject: s\r\n\r\n" {
		t.Fatalf("block %q (complete %v), %v", block.data, block.complete, err)
	}
	all, _ := io.ReadAll(whole)
	if string(all) != msg {
		t.Fatalf("whole message %q, want %q", all, msg)
	}
	// A header section longer than the bound stops at the bound.
	long := strings.Repeat("X-Pad: "+strings.Repeat("a", 90)+"\r\n", 2000) + "\r\nbody\r\n"
	block, whole, _ = ReadHeaderBlock(strings.NewReader(long))
	if len(block.data) < maxHeaderBlock || len(block.data) > maxHeaderBlock+200 || block.complete {
		t.Fatalf("block of %d bytes (complete %v), want about %d, cut", len(block.data), block.complete, maxHeaderBlock)
	}
	all, _ = io.ReadAll(whole)
	if string(all) != long {
		t.Fatal("the long message did not come back whole")
	}
}

func TestHeaderFromOwned(t *testing.T) {
	m, err := ParseSenderMap(strings.NewReader("sales@example.org alice@example.org\n@example.net alice@example.org\n"), "map")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		header string
		owned  bool
	}{
		{"From: alice@example.org\r\n", true},
		{"From: \"Alice\" <ALICE@example.org>\r\n", true},
		{"From: Sales\r\n <sales@example.org>\r\n", true}, // folded
		{"From: =?utf-8?q?Al=C3=AFce?= <anyone@example.net>\r\n", true},
		{"From: alias@backend.test\r\n", true}, // an address the backend gave
		{"From: ceo@bank.test\r\n", false},
		{"From: alice@example.org, ceo@bank.test\r\n", false},
		{"From: alice@example.org\r\nfrom: ceo@bank.test\r\n", false},
		// RFC 5322 §4.5.6 obs-from: white space before the colon is still
		// a From: field to Postfix and to readers.
		{"From: alice@example.org\r\nFrom : ceo@bank.test\r\n", false},
		{"From\t: ceo@bank.test\r\nFrom: alice@example.org\r\n", false},
		{"From : alice@example.org\r\n", true},
		{"Subject: no from\r\n", false},
		{"From: not an address\r\n", false},
		{"From: \"alice@example.org\" <ceo@bank.test>\r\n", false},
		// Unfolded as RFC 5322 §2.2.3 says: one From: with a second,
		// foreign address on its continuation line.
		{"From: alice@example.org\r\n <ceo@bank.test>\r\n", false},
		{"From: alice@example.org,\r\n\tceo@bank.test\r\n", false},
		{"FROM: alice@example.org\r\nfRoM: alice@example.org\r\n", false},
		{"From: friends: alice@example.org, ceo@bank.test;\r\n", false},
		{"From: friends: alice@example.org;\r\n", true},
		{"From: undisclosed:;\r\n", false},
		{"From: alice@example.org, sales@example.org\r\n", true},
		{"From: =?utf-8?q?ceo=40bank.test?= <alice@example.org>\r\n", true}, // a name, not an address
		{"From: alice@example.org (ceo@bank.test)\r\n", true},               // a comment
		{"From: <@route.test:ceo@bank.test>\r\n", false},                    // obs-route: refused, not guessed
		// Sender: is shown as the author too ("ceo on behalf of alice").
		{"From: alice@example.org\r\nSender: ceo@bank.test\r\n", false},
		{"From: alice@example.org\r\nsender : sales@example.org\r\n", true},
		{"From: alice@example.org\r\nSender: alice@example.org\r\nSender: alice@example.org\r\n", false},
		// Lines whose meaning readers disagree on are not vouched for.
		{"From: alice@example.org\r\n: x\r\n", false},               // empty name: Postfix ends the header here
		{"From: alice@example.org\r\nFr om: x\r\n", false},          // not a field name
		{"From: alice@example.org\r\nX-\xc3\xa9: x\r\n", false},     // 8-bit field name
		{"From: alice@example.org\r\nno colon\r\n", false},          // neither field nor continuation
		{"From: alice@example.org\rFrom: ceo@bank.test\r\n", false}, // bare CR
		{"From: alice@example.org\x00\r\n", false},                  // NUL
		// A bare LF ends a line, as it does for the upstream.
		{"From: alice@example.org\nFrom: ceo@bank.test\r\n", false},
		{"From: alice@example.org\n <ceo@bank.test>\r\n", false},
	} {
		block := HeaderBlock{data: []byte("Subject: t\r\n" + tc.header + "\r\n"), complete: true}
		why, _ := HeaderFromOwned(block, m, []string{"alice@example.org"}, []string{"alias@backend.test"})
		if (why == "") != tc.owned {
			t.Errorf("%q: owned=%v (%s), want %v", tc.header, why == "", why, tc.owned)
		}
	}
}

func TestParseHeaderFields(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []headerField
		err  bool
	}{
		{in: "", want: nil},
		{in: "\r\nFrom: body@x\r\n", want: nil}, // no header at all
		{in: "A: 1\r\nB:2\r\n\r\nC: body\r\n", want: []headerField{{"A", " 1"}, {"B", "2"}}},
		// Unfolding removes the line breaks and keeps the white space.
		{in: "Subject: a\r\n  b\r\n\tc\r\n", want: []headerField{{"Subject", " a  b\tc"}}},
		{in: "From : x\r\nTo\t: y\r\n", want: []headerField{{"From", " x"}, {"To", " y"}}},
		// The last line needs no line ending (the end of the data ends it).
		{in: "A: 1\r\nFrom: x", want: []headerField{{"A", " 1"}, {"From", " x"}}},
		{in: "A: 1\r", err: true}, // a CR the end of data follows is bare
		{in: "A: 1\nB: 2\n\nC: 3\n", want: []headerField{{"A", " 1"}, {"B", " 2"}}},
		{in: "A: 1\r\n \r\n", want: []headerField{{"A", " 1 "}}}, // obs-FWS: a blank continuation
		{in: " A: 1\r\n", err: true},
		{in: "A: 1\r\n: 2\r\n", err: true},
		{in: "A: 1\r\nB\r\n", err: true},
		{in: "A: 1\r2\r\n", err: true},
		{in: "A: 1\r\r\n", err: true},
		{in: "A: \x00\r\n", err: true},
		{in: "\x7f: 1\r\n", err: true},
	} {
		got, err := parseHeaderFields([]byte(tc.in))
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("%q: got %q, %v; want %q (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func FuzzHeaderFrom(f *testing.F) {
	f.Add([]byte("From: \"A\" <alice@example.org>\r\nSubject: x\r\n\r\nbody\r\n"))
	f.Add([]byte("From: a@x,\r\n b@y\r\n\r\n"))
	f.Add([]byte("from: =?utf-8?b?w6k=?= <a@x>\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		block, whole, err := ReadHeaderBlock(bytes.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		all, _ := io.ReadAll(whole)
		if !bytes.Equal(all, msg) || !bytes.HasPrefix(msg, block.data) {
			t.Fatal("ReadHeaderBlock changed the message")
		}
		why, addrs := HeaderFromOwned(block, nil, []string{"alice@example.org"}, nil)
		if why == "" && len(addrs) == 0 {
			t.Fatal("owned without an address")
		}
		// The last line reads the same whether it ends or the data does:
		// the check must not depend on the CRLF the upstream adds.
		ended, _ := io.ReadAll(TerminateLastLine(bytes.NewReader(block.data)))
		if why2, _ := HeaderFromOwned(HeaderBlock{ended, block.complete}, nil, []string{"alice@example.org"}, nil); why2 != why {
			t.Fatalf("%q: %q, but with its last line ended: %q", block.data, why, why2)
		}
		fields, err := parseHeaderFields(block.data)
		for _, f := range fields {
			if err == nil && (!isFieldName([]byte(f.name)) || strings.ContainsAny(f.value, "\r\n\x00")) {
				t.Fatalf("%q: parsed into the field %q", block.data, f)
			}
		}
	})
}

// A From: the login owns, then more header fields than the check reads,
// then a second From: with someone else's address: the upstream would get
// both, and the reader's client may show either.
func TestHeaderFromPastTheCheckedBlock(t *testing.T) {
	pad := strings.Repeat("X-Pad: "+strings.Repeat("a", 90)+"\r\n", maxHeaderBlock/97+10)
	msg := "From: alice@example.org\r\n" + pad + "From: ceo@bank.test\r\n\r\nbody\r\n"
	block, _, err := ReadHeaderBlock(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if why, addrs := HeaderFromOwned(block, nil, []string{"alice@example.org"}, nil); why == "" {
		t.Errorf("owned (From: %v), want refused: the header section goes on past what was checked", addrs)
	}
}

// A field folded over the whole 100 KiB is unfolded in one buffer: adding
// each of its 25,000 lines to a string copied the body again for every
// line (2 s of CPU per message).
func TestParseHeaderFieldsFoldedOnce(t *testing.T) {
	data := []byte("From: a@x\r\n" + strings.Repeat(" x\r\n", maxHeaderBlock/4) + "\r\n")
	allocs := testing.AllocsPerRun(3, func() {
		if _, err := parseHeaderFields(data); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 100 {
		t.Fatalf("%.0f allocations to unfold one field of %d lines, want a buffer that grows", allocs, maxHeaderBlock/4)
	}
}

func BenchmarkParseFoldedHeader(b *testing.B) {
	data := []byte("From: a@x\r\n" + strings.Repeat(" x\r\n", maxHeaderBlock/4) + "\r\n")
	b.SetBytes(int64(len(data)))
	for range b.N {
		if _, err := parseHeaderFields(data); err != nil {
			b.Fatal(err)
		}
	}
}
