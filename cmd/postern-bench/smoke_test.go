package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/certs/certstest"
)

func testTLSConfig(t *testing.T) *tls.Config {
	t.Helper()
	certPEM, keyPEM, _ := certstest.SelfSigned(t, "bench.test")
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}
}

// TestSmoke runs every client mode with tiny numbers against an in-process
// go-smtp server. It checks that the generator works, never how fast.
func TestSmoke(t *testing.T) {
	tc := testTLSConfig(t)
	starttls, err := startSinkTLS("127.0.0.1:0", tc, false)
	if err != nil {
		t.Fatal(err)
	}
	defer starttls.Close()
	implicit, err := startSinkTLS("127.0.0.1:0", tc, true)
	if err != nil {
		t.Fatal(err)
	}
	defer implicit.Close()

	// groups is --tls-groups; group the key exchange the client must
	// record (the sink is Go with its defaults, so it takes the hybrid
	// X25519MLKEM768 whenever the client offers it).
	for _, c := range []struct {
		name, addr, mode string
		pipelining       bool
		groups, group    string
	}{
		{"starttls", starttls.Addr(), "starttls", false, "", "X25519MLKEM768"},
		{"tls", implicit.Addr(), "tls", false, "", "X25519MLKEM768"},
		{"plain", starttls.Addr(), "plain", false, "", ""},
		{"starttls-pipelining", starttls.Addr(), "starttls", true, "", "X25519MLKEM768"},
		{"tls-pipelining", implicit.Addr(), "tls", true, "", "X25519MLKEM768"},
		{"starttls-x25519", starttls.Addr(), "starttls", false, "x25519", "X25519"},
		{"tls-pipelining-x25519", implicit.Addr(), "tls", true, "x25519", "X25519"},
		{"starttls-p256", starttls.Addr(), "starttls", false, "secp256r1", "CurveP256"},
		{"starttls-serial", starttls.Addr(), "starttls", false, "", "X25519MLKEM768"},
		{"tls-dot-apart", implicit.Addr(), "tls", false, "", "X25519MLKEM768"},
		{"starttls-both", starttls.Addr(), "starttls", false, "x25519mlkem768,x25519", "X25519MLKEM768"},
	} {
		t.Run(c.name, func(t *testing.T) {
			groups, err := parseTLSGroups(c.groups)
			if err != nil {
				t.Fatal(err)
			}
			s, err := runLoad(context.Background(), loadConfig{
				Addr: c.addr, Mode: c.mode, Pipelining: c.pipelining, Shape: shapeOf(c.name), Insecure: true, ServerName: "bench.test", TLSGroups: groups,
				User: "bench@example.test", Password: "pw", From: "bench@example.test", To: "rcpt@example.net",
				Concurrency: 3, Connections: 5, MessagesPerConn: 2, Size: 1000 + len(c.name), Duration: 20 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			if s.Errors != 0 || s.Messages != 10 || s.Connections != 5 {
				t.Fatalf("errors %d %q, messages %d, connections %d", s.Errors, s.ErrorTexts, s.Messages, s.Connections)
			}
			if s.MsgP99 <= 0 || s.SetupP50 <= 0 {
				t.Errorf("no latencies: %+v", s)
			}
			if s.TLSGroup != c.group {
				t.Errorf("negotiated group %q, want %q", s.TLSGroup, c.group)
			}
		})
	}

	t.Run("idle", func(t *testing.T) {
		s, err := runLoad(context.Background(), loadConfig{
			Addr: implicit.Addr(), Mode: "tls", Insecure: true, User: "u", Password: "p",
			From: "a@b.test", To: "c@d.test", Concurrency: 2, Idle: 4, Hold: 100 * time.Millisecond,
			Size: 4096, Duration: 20 * time.Second, RSSPID: os.Getpid(),
		})
		if err != nil {
			t.Fatal(err)
		}
		if s.IdleHeld != 4 || s.Connections != 4 || s.Errors != 0 || s.RSSPeakKiB == 0 {
			t.Fatalf("%+v", s)
		}
	})

	t.Run("errors are counted", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now
		s, err := runLoad(context.Background(), loadConfig{
			Addr: addr, Mode: "plain", From: "a@b.test", To: "c@d.test",
			Concurrency: 2, Connections: 3, MessagesPerConn: 1, Size: 300, Duration: 5 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		if s.Errors != 3 || len(s.ErrorTexts) == 0 || !strings.HasPrefix(s.ErrorTexts[0], "set-up:") {
			t.Fatalf("%+v", s)
		}
	})

	t.Run("command line and report", func(t *testing.T) {
		var out, errOut bytes.Buffer
		err := run(context.Background(), []string{"--addr", starttls.Addr(), "--mode", "starttls", "--insecure",
			"--user", "u", "--password", "p", "--concurrency", "2", "--connections", "2", "--messages-per-conn", "1",
			"--size", "512", "--duration", "20s", "--label", "postern", "--workload", "W2x", "--json",
			"--cpu-pids", strconv.Itoa(os.Getpid()), "--tls-groups", "x25519"}, &out, &errOut)
		if err != nil {
			t.Fatalf("%v\n%s", err, errOut.String())
		}
		var s Summary
		if err := json.Unmarshal(out.Bytes(), &s); err != nil || s.Messages != 2 || s.Label != "postern" {
			t.Fatalf("%v %+v %s", err, s, out.String())
		}
		if s.TLSOffered != "X25519" || s.TLSGroup != "X25519" || !strings.Contains(out.String(), `"tls_group":"X25519"`) {
			t.Fatalf("--tls-groups x25519: offered %q, negotiated %q\n%s", s.TLSOffered, s.TLSGroup, out.String())
		}
		dir := t.TempDir()
		in := filepath.Join(dir, "results.jsonl")
		os.WriteFile(in, out.Bytes(), 0o644)
		md, svg := filepath.Join(dir, "RESULTS.md"), filepath.Join(dir, "chart.svg")
		if err := run(context.Background(), []string{"report", "--in", in, "--out", md, "--svg", svg}, &out, &errOut); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(md)
		for _, want := range []string{"## W2x handshake-heavy", "| postern | **cache**: bcrypt once, then memory | 1 |", "| 0 | X25519 |"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("report lacks %q:\n%s", want, b)
			}
		}
	})

	t.Run("unknown --tls-groups", func(t *testing.T) {
		var out, errOut bytes.Buffer
		err := run(context.Background(), []string{"--addr", starttls.Addr(), "--insecure", "--tls-groups", "x25519,x448"}, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), `unknown group "x448"`) {
			t.Fatalf("err = %v, want unknown group \"x448\"", err)
		}
		if out.Len() != 0 {
			t.Errorf("ran anyway:\n%s", out.String())
		}
	})
}

// shapeOf is the --shape a smoke case names after its mode ("" when none).
func shapeOf(name string) string {
	for _, s := range []string{shapeSerial, shapeDotApart} {
		if strings.HasSuffix(name, "-"+s) {
			return s
		}
	}
	return ""
}
