package proxy

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestReadHeaderBlock(t *testing.T) {
	msg := "From: a@x\r\nSubject: s\r\n\r\nbody\r\nFrom: b@y\r\n"
	block, whole, err := readHeaderBlock(strings.NewReader(msg))
	if err != nil || !block.complete || string(block.data) != "From: a@x\r\nSubject: s\r\n\r\n" {
		t.Fatalf("block %q (complete %v), %v", block.data, block.complete, err)
	}
	all, _ := io.ReadAll(whole)
	if string(all) != msg {
		t.Fatalf("whole message %q, want %q", all, msg)
	}
	// A header section longer than the bound stops at the bound.
	long := strings.Repeat("X-Pad: "+strings.Repeat("a", 90)+"\r\n", 2000) + "\r\nbody\r\n"
	block, whole, _ = readHeaderBlock(strings.NewReader(long))
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
	} {
		block := headerBlock{data: []byte("Subject: t\r\n" + tc.header + "\r\n"), complete: true}
		why, _ := headerFromOwned(block, m, []string{"alice@example.org"}, []string{"alias@backend.test"})
		if (why == "") != tc.owned {
			t.Errorf("%q: owned=%v (%s), want %v", tc.header, why == "", why, tc.owned)
		}
	}
}

func FuzzHeaderFrom(f *testing.F) {
	f.Add([]byte("From: \"A\" <alice@example.org>\r\nSubject: x\r\n\r\nbody\r\n"))
	f.Add([]byte("From: a@x,\r\n b@y\r\n\r\n"))
	f.Add([]byte("from: =?utf-8?b?w6k=?= <a@x>\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		block, whole, err := readHeaderBlock(bytes.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		all, _ := io.ReadAll(whole)
		if !bytes.Equal(all, msg) || !bytes.HasPrefix(msg, block.data) {
			t.Fatal("readHeaderBlock changed the message")
		}
		why, addrs := headerFromOwned(block, nil, []string{"alice@example.org"}, nil)
		if why == "" && len(addrs) == 0 {
			t.Fatal("owned without an address")
		}
	})
}

// A From: the login owns, then more header fields than the check reads,
// then a second From: with someone else's address: the upstream would get
// both, and the reader's client may show either.
func TestHeaderFromPastTheCheckedBlock(t *testing.T) {
	pad := strings.Repeat("X-Pad: "+strings.Repeat("a", 90)+"\r\n", maxHeaderBlock/97+10)
	msg := "From: alice@example.org\r\n" + pad + "From: ceo@bank.test\r\n\r\nbody\r\n"
	block, _, err := readHeaderBlock(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if why, addrs := headerFromOwned(block, nil, []string{"alice@example.org"}, nil); why == "" {
		t.Errorf("owned (From: %v), want refused: the header section goes on past what was checked", addrs)
	}
}
