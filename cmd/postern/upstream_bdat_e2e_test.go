package main

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/proxy/proxytest"
)

// postfixQueued is Postfix's reply to a message it queued: "Ok: queued as
// ID" after DATA, "Ok: 1234 bytes queued as ID" after BDAT (Postern sends
// a message that fits one chunk as BDAT LAST).
var postfixQueued = regexp.MustCompile(`250 2\.0\.0 Ok: ([0-9]+ bytes )?queued as [0-9A-Za-z]+`)

// queuedByPostfix reports whether s holds Postfix's reply to a queued message.
func queuedByPostfix(s string) bool { return postfixQueued.MatchString(s) }

// expectQueued fails the test unless got is Postfix's reply to a queued
// message, passed on.
func expectQueued(t *testing.T, what, got string) {
	t.Helper()
	if !strings.HasPrefix(got, "250 ") || !queuedByPostfix(got) {
		t.Fatalf("%s: got %q, want 250 2.0.0 Ok: ... queued as ...", what, got)
	}
}

// bdatTestMessage is a message of about size bytes whose lines are what
// dot-stuffing and a chunk's edges can get wrong: lines of dots, a dot
// line with text, a line longer than 1,000 octets, and a last line just
// before the end.
func bdatTestMessage(subject string, size int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: <%s>\r\nTo: <friend@example.test>\r\nSubject: %s\r\n\r\n", aliceLogin, subject)
	lines := []string{".", "..", "...dots", ".leading dot", strings.Repeat("L", 1200), "plain text line", " space first", ""}
	for i := 0; b.Len() < size; i++ {
		b.WriteString(lines[i%len(lines)])
		b.WriteString("\r\n")
	}
	b.WriteString(".last line\r\n")
	return b.String()
}

// dotStuff is msg as a client sends it after DATA, final dot included.
func dotStuff(msg string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(msg, "\r\n") {
		if strings.HasPrefix(line, ".") {
			b.WriteByte('.')
		}
		b.WriteString(line)
	}
	b.WriteString(".\r\n")
	return b.String()
}

// postfixCommands are the command counts of the sessions with a MAIL the
// test Postfix ended, one map per "disconnect from" line of its log
// (Postfix 3.x logs e.g. "ehlo=1 mail=1 rcpt=1 bdat=1 quit=1 commands=5");
// the harness's readiness probe (quit=1) is not one.
func postfixCommands(log string) []map[string]string {
	var sessions []map[string]string
	counts := regexp.MustCompile(`([a-z]+)=([0-9/]+)`)
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "disconnect from") {
			continue
		}
		s := map[string]string{}
		for _, m := range counts.FindAllStringSubmatch(line, -1) {
			s[m[1]] = m[2]
		}
		if s["mail"] != "" {
			sessions = append(sessions, s)
		}
	}
	return sessions
}

// TestUpstreamBDATByteExactE2E sends messages of 4 KiB, around the one
// chunk's size (64 KiB with the Received header and BDAT's command) and of
// 200 KiB through Postern to a real Postfix, once offering CHUNKING and
// once not: every message is stored as the client sent it, byte for byte.
// With CHUNKING a message that fits one chunk goes as one BDAT LAST (no DATA,
// no dot-stuffing on the way); a longer one, and every message to a Postfix
// without CHUNKING, goes as DATA.
func TestUpstreamBDATByteExactE2E(t *testing.T) {
	sizes := []struct {
		name  string
		size  int
		chunk bool // one BDAT LAST when CHUNKING is offered
	}{
		{"4k", 4096, true},
		{"below-chunk", 60000, true},
		{"near-chunk-a", 65300, false},
		{"near-chunk-b", 65450, false},
		{"above-chunk", 66000, false},
		{"200k", 200 << 10, false},
	}
	for _, offered := range []bool{true, false} {
		t.Run(fmt.Sprintf("chunking=%v", offered), func(t *testing.T) {
			var opts proxytest.PostfixOptions
			if !offered {
				opts.MainCF = []string{"smtpd_discard_ehlo_keywords = chunking, silent-discard"}
			}
			pf := proxytest.StartPostfix(t, opts)
			// No pool: each client session has its own upstream session,
			// so each "disconnect from" line is one message's.
			p := startPostern(t, pf.Addr, "--upstream-pool", "0", "--max-message-size", "1000000")
			for i, s := range sizes {
				msg := bdatTestMessage(s.name, s.size)
				c := dialTLSText(t, p.StartTLS, aliceLogin, alicePass)
				c.send("MAIL FROM:<" + aliceLogin + ">")
				c.expect("250")
				c.send("RCPT TO:<friend@example.test>")
				c.expect("250")
				c.send("DATA")
				c.expect("354")
				c.raw(dotStuff(msg))
				if r := c.expect("250 2.0.0 Ok: "); !queuedByPostfix(r) {
					t.Fatalf("%s: want Postfix's 250, got %q", s.name, r)
				}
				c.send("QUIT")
				c.expect("221")
				msgs := pf.WaitMessages(t, i+1, 30*time.Second)
				m := findSubject(t, msgs, s.name)
				if !bytes.HasSuffix(m.Data, []byte(msg)) {
					t.Fatalf("%s: stored message is not what was sent (%d bytes stored, %d sent)", s.name, len(m.Data), len(msg))
				}
				// Postern's Received header, then the message.
				if !bytes.HasPrefix(m.Data, []byte("Received: ")) || bytes.Count(m.Data[:len(m.Data)-len(msg)], []byte("\r\nReceived: ")) != 0 {
					t.Fatalf("%s: want one Received header before the message, got:\n%s", s.name, m.Data[:len(m.Data)-len(msg)])
				}
			}
			deadline := time.Now().Add(30 * time.Second)
			var sessions []map[string]string
			for sessions = postfixCommands(pf.Log()); len(sessions) < len(sizes); sessions = postfixCommands(pf.Log()) {
				if time.Now().After(deadline) {
					t.Fatalf("Postfix ended %d sessions, want %d:\n%s", len(sessions), len(sizes), pf.Log())
				}
				time.Sleep(25 * time.Millisecond)
			}
			chunks, datas := 0, 0
			for _, s := range sessions {
				if s["bdat"] != "" {
					chunks++
					if s["bdat"] != "1" || s["data"] != "" {
						t.Errorf("a session sent bdat=%s data=%s, want one BDAT LAST and no DATA", s["bdat"], s["data"])
					}
				}
				if s["data"] == "1" {
					datas++
				}
			}
			wantChunks := 0
			if offered {
				for _, s := range sizes {
					if s.chunk {
						wantChunks++
					}
				}
			}
			if chunks+datas != len(sizes) || chunks < wantChunks || (!offered && chunks != 0) {
				t.Fatalf("upstream sessions: %d with BDAT, %d with DATA; want %d messages, at least %d as BDAT (CHUNKING offered: %v):\n%s",
					chunks, datas, len(sizes), wantChunks, offered, pf.Log())
			}
		})
	}
}

// TestUpstreamBDATFailureMidMessageE2E stops the upstream Postfix while a
// client is in the middle of its message: the client hears 4xx after its
// final dot, never 250, and nothing is delivered once Postfix is back.
// Postern holds a message that fits one chunk until its end, so the
// upstream's failure shows when the chunk is sent.
func TestUpstreamBDATFailureMidMessageE2E(t *testing.T) {
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	p := startPostern(t, pf.Addr, "--upstream-pool", "0")
	msg := bdatTestMessage("mid-message-failure", 8000)
	stuffed := dotStuff(msg)
	c := dialTLSText(t, p.StartTLS, aliceLogin, alicePass)
	c.send("MAIL FROM:<" + aliceLogin + ">")
	c.expect("250")
	c.send("RCPT TO:<friend@example.test>")
	c.expect("250")
	c.send("DATA")
	c.expect("354")
	c.raw(stuffed[:len(stuffed)/2])
	pf.Stop()
	c.raw(stuffed[len(stuffed)/2:])
	reply := c.expect("4")
	if !strings.HasPrefix(reply, "451") && !strings.HasPrefix(reply, "421") {
		t.Fatalf("want 451 or 421 after the upstream went away, got %q", reply)
	}
	pf.Start()
	pf.WaitQueueEmpty(t, 30*time.Second)
	if msgs := pf.Messages(t); len(msgs) != 0 {
		t.Fatalf("%d messages delivered after the upstream failed mid-message:\n%s", len(msgs), msgs[0].Data)
	}
	if log := p.Log(); strings.Contains(log, "DATA RACE") || strings.Contains(log, "panic") {
		t.Fatalf("postern:\n%s", log)
	}
}
