package proxy

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"
)

func TestReceivedHeader(t *testing.T) {
	now := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	state := &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256}
	base := receivedInfo{by: "mail.example.org", id: "ID1", helo: "home-pc.lan", clientIP: "198.51.100.23",
		tls: state, authed: true, recipient: "bob@example.net", now: now}

	anon := base
	anon.mode = ReceivedAnonymous
	got := string(receivedHeader(anon))
	want := "Received: from [127.0.0.1] (localhost [127.0.0.1])\r\n\tby mail.example.org (Postern) with ESMTPSA id ID1;\r\n\tWed, 25 Nov 2026 08:00:00 +0000\r\n"
	if got != want {
		t.Fatalf("anonymous:\n got %q\nwant %q", got, want)
	}
	for _, leak := range []string{"198.51.100.23", "home-pc", "bob@"} {
		if strings.Contains(got, leak) {
			t.Fatalf("anonymous header leaks %q", leak)
		}
	}

	full := base
	full.mode = ReceivedFull
	got = string(receivedHeader(full))
	want = "Received: from home-pc.lan ([198.51.100.23])\r\n\tby mail.example.org (Postern) with ESMTPSA id ID1\r\n\t(using TLS 1.3 with cipher TLS_AES_128_GCM_SHA256)\r\n\tfor <bob@example.net>;\r\n\tWed, 25 Nov 2026 08:00:00 +0000\r\n"
	if got != want {
		t.Fatalf("full:\n got %q\nwant %q", got, want)
	}

	full.helo = "evil)\r\nX-Injected: 1"
	if got := string(receivedHeader(full)); strings.Contains(got, "\r\nX-Injected") {
		t.Fatalf("EHLO name injected a header: %q", got)
	}

	none := base
	none.mode = ReceivedNone
	if h := receivedHeader(none); h != nil {
		t.Fatalf("none: got %q", h)
	}

	plain := base
	plain.mode, plain.tls, plain.authed = ReceivedAnonymous, nil, false
	if got := string(receivedHeader(plain)); !strings.Contains(got, "with ESMTP id") {
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

func TestParseNetworksAndListener(t *testing.T) {
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
	for _, s := range []string{"starttls=:587", "TLS=127.0.0.1:465"} {
		if _, err := ParseListener(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	for _, s := range []string{"smtp=:25", ":587", "tls=587"} {
		if _, err := ParseListener(s); err == nil {
			t.Errorf("%s accepted", s)
		}
	}
}
