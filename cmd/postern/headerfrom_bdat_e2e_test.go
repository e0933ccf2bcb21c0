package main

import (
	"fmt"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/proxy/proxytest"
)

// headerFromCase is one message sent as BDAT chunks (the last one LAST)
// by alice, who owns only her own address, to a --check-header-from
// enforce instance.
type headerFromCase struct {
	name   string
	chunks []string
	want   string // the reply's prefix: "553 5.7.1", "5" (any refusal) or "250"
}

// headerFromBDATCases are the ways issue 18 found (and the ones beside
// them) to get a foreign From: past the check with BDAT, and messages of
// alice's own that must pass, most of them ending without a final CRLF.
func headerFromBDATCases() []headerFromCase {
	const me = aliceLogin
	pad := "X-Pad: " + strings.Repeat("p", 90) + "\r\n"
	pads := func(n int) string { return strings.Repeat(pad, n) }
	return []headerFromCase{
		// Issue 18: the last header line has no CRLF; go-smtp's client
		// added it on the way out, after the check had stopped at the
		// last line ending.
		{"second From: on an unterminated last line", []string{"From: " + me + "\r\nSubject: x\r\nFrom: ceo@bank.test"}, "553 5.7.1"},
		{"foreign address on an unterminated continuation line", []string{"Subject: x\r\nFrom: " + me + "\r\n <ceo@bank.test>"}, "553 5.7.1"},
		{"second From: split across two chunks", []string{"From: " + me + "\r\nSubject: x\r\nFrom: ceo@", "bank.test"}, "553 5.7.1"},
		{"one byte per chunk", strings.Split("From: "+me+"\r\nFrom: ceo@bank.test", ""), "553 5.7.1"},
		{"chunks split inside a CRLF", []string{"From: " + me + "\r\nSubject: x\r", "\nFrom: ceo@bank.test"}, "553 5.7.1"},
		{"obsolete From : on the last line", []string{"Subject: x\r\nFrom: " + me + "\r\nFrom : ceo@bank.test"}, "553 5.7.1"},
		{"lower case from: on the last line", []string{"From: " + me + "\r\nfrom:ceo@bank.test"}, "553 5.7.1"},
		{"foreign Sender:", []string{"From: " + me + "\r\nSender: ceo@bank.test\r\n\r\nbody"}, "553 5.7.1"},
		{"group with a foreign member", []string{"From: team: " + me + ", ceo@bank.test;\r\n\r\n"}, "553 5.7.1"},
		{"two addresses, one foreign", []string{"From: " + me + ",\r\n\tceo@bank.test"}, "553 5.7.1"},
		{"empty field name before a From:", []string{"Subject: x\r\n: y\r\nFrom: " + me}, "553 5.7.1"},
		// Past the 100 KiB the check reads, nothing is vouched for:
		// refused even when what was read looks right.
		{"second From: past the header cap", []string{"From: " + me + "\r\n" + pads(500), pads(500), pads(100) + "From: ceo@bank.test"}, "553 5.7.1"},
		{"header section over the cap", []string{"From: " + me + "\r\n" + pads(600), pads(600) + "\r\nbody"}, "553 5.7.1"},
		// Line endings readers disagree on never reach the upstream.
		{"CR-only line ends", []string{"From: " + me + "\rFrom: ceo@bank.test\r"}, "5"},
		// Bare-LF line ends are normalised to CRLF (issue 24): the check
		// reads them as line ends too.
		{"LF-only line ends, a foreign From:", []string{"From: " + me + "\nSubject: x\nFrom: ceo@bank.test\n\nbody"}, "553 5.7.1"},
		{"LF-only line ends, a foreign From: unterminated", []string{"From: " + me + "\nSubject: x\nFrom: ceo@bank.test"}, "553 5.7.1"},
		{"NUL in the header", []string{"From: " + me + "\x00\r\nSubject: x\r\n\r\nbody"}, "5"},
		// Alice's own messages pass, however they end.
		{"own From: on an unterminated last line, no body", []string{"Subject: own-last\r\nFrom: " + me}, "250"},
		{"own From: across chunks, encoded name, unterminated body", []string{"Subject: own-chunks\r\nFROM: =?utf-8?q?Al=C3=AFce?= <" + me, ">\r\nSender: " + me + "\r\n\r\nbody"}, "250"},
		{"own From:, LF-only line ends", []string{"Subject: own-lf\nFrom: " + me + "\n\nbody"}, "250"},
	}
}

// sendBDATChunks sends one message from alice as BDAT chunks and returns
// the first reply that is not 250, or the LAST chunk's.
func sendBDATChunks(t *testing.T, addr string, chunks []string) string {
	t.Helper()
	c := dialTLSText(t, addr, aliceLogin, alicePass)
	c.send("MAIL FROM:<" + aliceLogin + ">")
	c.expect("250")
	c.send("RCPT TO:<friend@example.test>")
	c.expect("250")
	var reply string
	for i, chunk := range chunks {
		last := ""
		if i == len(chunks)-1 {
			last = " LAST"
		}
		c.raw(fmt.Sprintf("BDAT %d%s\r\n%s", len(chunk), last, chunk))
		if reply = replyWithin(t, c, 30*time.Second); !strings.HasPrefix(reply, "250") {
			break
		}
	}
	c.send("QUIT")
	c.expect("221")
	return reply
}

// authorsOwnedBy reads the header section of a stored message the way a
// lenient reader might (any line with a colon that does not start with
// white space opens a field, white space before the colon and case do not
// matter) and returns "" when it has exactly one From: and at most one
// Sender:, with only owner's addresses in them; else what is wrong.
func authorsOwnedBy(data []byte, owner string) string {
	fields := map[string][]string{}
	var last string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if vs := fields[last]; len(vs) > 0 {
				vs[len(vs)-1] += line
			}
			continue
		}
		if name, value, ok := strings.Cut(line, ":"); ok {
			last = strings.ToLower(strings.TrimRight(name, " \t"))
			fields[last] = append(fields[last], value)
		}
	}
	if n := len(fields["from"]); n != 1 {
		return fmt.Sprintf("%d From: fields", n)
	}
	if n := len(fields["sender"]); n > 1 {
		return fmt.Sprintf("%d Sender: fields", n)
	}
	for _, v := range append(fields["from"], fields["sender"]...) {
		list, err := mail.ParseAddressList(v)
		if err != nil {
			return fmt.Sprintf("an unparsable author field %q: %v", v, err)
		}
		for _, a := range list {
			if !strings.EqualFold(a.Address, owner) {
				return fmt.Sprintf("the foreign author %q", a.Address)
			}
		}
	}
	return ""
}

// TestHeaderFromBDATE2E: with --check-header-from enforce, a BDAT message
// whose header carries an address alice does not own is refused (553
// 5.7.1, or the 554 of a line ending readers disagree on) and reaches
// nothing, however its lines and chunks end; her own messages pass, and
// what the recording upstream got has exactly one From: of hers, the last
// line ended with CRLF.
func TestHeaderFromBDATE2E(t *testing.T) {
	t.Parallel()
	up := proxytest.StartUpstream(t, proxytest.UpstreamOptions{})
	p := startPostern(t, up.Addr, "--check-header-from", "enforce")
	for _, tc := range headerFromBDATCases() {
		t.Run(tc.name, func(t *testing.T) {
			before := len(up.Messages())
			reply := sendBDATChunks(t, p.StartTLS, tc.chunks)
			if !strings.HasPrefix(reply, tc.want) {
				t.Fatalf("reply %q, want %s", reply, tc.want)
			}
			got := up.Messages()[before:]
			if tc.want != "250" {
				if len(got) != 0 {
					t.Fatalf("refused, but the upstream got:\n%q", got[0].Data)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("the upstream got %d messages, want 1", len(got))
			}
			if why := authorsOwnedBy(got[0].Data, aliceLogin); why != "" {
				t.Fatalf("the upstream got %s:\n%q", why, got[0].Data)
			}
			// What the upstream gets: every line ended with CRLF (bare LF
			// normalised, the last line terminated).
			sent := strings.ReplaceAll(strings.ReplaceAll(strings.Join(tc.chunks, ""), "\r\n", "\n"), "\n", "\r\n")
			if !strings.HasSuffix(string(got[0].Data), "\n"+sent+"\r\n") {
				t.Fatalf("the upstream got\n%q\nwant the Received header, then\n%q", got[0].Data, sent+"\r\n")
			}
		})
	}
	if log := p.Log(); strings.Contains(log, "DATA RACE") || strings.Contains(log, "panic") {
		t.Fatalf("postern:\n%s", log)
	}
}

// TestHeaderFromBDATPostfixE2E: issue 18's three ways past the check,
// against the real Postfix. Before the fix Postfix stored the first with
// two From: fields, the second foreign. Now each is refused and Postfix
// stores nothing, and what it stores of alice's own unterminated message
// has exactly one From:, hers.
func TestHeaderFromBDATPostfixE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	p := startPostern(t, pf.Addr, "--check-header-from", "enforce")
	keep := map[string]bool{
		"second From: on an unterminated last line":                true,
		"foreign address on an unterminated continuation line":     true,
		"second From: split across two chunks":                     true,
		"own From: on an unterminated last line, no body":          true,
		"own From: across chunks, encoded name, unterminated body": true,
	}
	accepted := 0
	for _, tc := range headerFromBDATCases() {
		if !keep[tc.name] {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			reply := sendBDATChunks(t, p.StartTLS, tc.chunks)
			if !strings.HasPrefix(reply, tc.want) {
				t.Fatalf("reply %q, want %s", reply, tc.want)
			}
			if tc.want == "250" {
				accepted++
			}
		})
	}
	pf.WaitMessages(t, accepted, 30*time.Second)
	pf.WaitQueueEmpty(t, 30*time.Second) // a refused message that slipped through is delivered too
	msgs := pf.Messages(t)
	if len(msgs) != accepted {
		t.Fatalf("Postfix stored %d messages, want %d", len(msgs), accepted)
	}
	for _, m := range msgs {
		if why := authorsOwnedBy(m.Data, aliceLogin); why != "" {
			t.Fatalf("Postfix stored %s:\n%s", why, m.Raw)
		}
	}
}
