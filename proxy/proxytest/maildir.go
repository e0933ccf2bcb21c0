package proxytest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// Message is one message as the test Postfix delivered it into its Maildir.
type Message struct {
	// Path is the Maildir file.
	Path string
	// Raw is the file as stored: Postfix's delivery headers first, and
	// LF line endings (Postfix stores lines in UNIX form).
	Raw []byte
	// ReturnPath is the envelope sender from the Return-Path header,
	// without angle brackets ("" for the null sender).
	ReturnPath string
	// Recipient is the envelope recipient, from the Delivered-To header
	// (as Postfix wrote it; compare case-insensitively).
	Recipient string
	// OriginalRecipient is the recipient as given in RCPT TO, from
	// X-Original-To.
	OriginalRecipient string
	// Received is the Received header the test Postfix's smtpd added,
	// continuation lines included (LF-separated, no final newline); it
	// names the client Postfix saw, e.g. "from client.test (unknown [127.0.0.1])".
	Received string
	// Data is the message as the SMTP client sent it: Raw without the
	// headers Postfix added (Return-Path, X-Original-To, Delivered-To and
	// its own Received) and with CRLF line endings restored, dot-stuffing
	// already undone. A bare LF or CR the client sent is not preserved:
	// Postfix normalises it before storing.
	Data []byte
}

// parseMessage splits off the headers the test Postfix prepended.
func parseMessage(path string, raw []byte) Message {
	m := Message{Path: path, Raw: raw}
	rest := raw
	takeLine := func() string {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			line := string(rest)
			rest = nil
			return line
		}
		line := string(rest[:i])
		rest = rest[i+1:]
		return line
	}
	// virtual(8) writes Return-Path, X-Original-To and Delivered-To, in
	// that order, before the queued message.
prepended:
	for {
		line := strings.TrimSuffix(string(firstLine(rest)), "\n")
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimSpace(value)
		switch strings.ToLower(name) {
		case "return-path":
			m.ReturnPath = strings.TrimSuffix(strings.TrimPrefix(value, "<"), ">")
		case "x-original-to":
			m.OriginalRecipient = value
		case "delivered-to":
			m.Recipient = value
		default:
			break prepended
		}
		takeLine()
	}
	// The queued message starts with the Received header of our smtpd;
	// any Received header below it (Postern's) belongs to the message.
	if bytes.HasPrefix(rest, []byte("Received:")) {
		saved := rest
		lines := []string{takeLine()}
		for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
			lines = append(lines, takeLine())
		}
		header := strings.Join(lines, "\n")
		if strings.Contains(header, "by "+PostfixHostname+" (Postfix)") {
			m.Received = header
		} else {
			rest = saved
		}
	}
	m.Data = bytes.ReplaceAll(rest, []byte("\n"), []byte("\r\n"))
	return m
}

// firstLine returns b up to and including its first LF.
func firstLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i+1]
	}
	return b
}

// Messages returns every message delivered so far, oldest first. Maildir
// delivery is atomic (tmp/ then a rename into new/), so a message is
// either complete or absent.
func (p *Postfix) Messages(t testing.TB) []Message {
	t.Helper()
	msgs, err := readMaildir(p.MailDir)
	if err != nil {
		t.Fatalf("reading the test Postfix Maildir: %v", err)
	}
	return msgs
}

// WaitMessages waits until at least n messages were delivered and returns
// all of them; the test fails after timeout.
func (p *Postfix) WaitMessages(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs := p.Messages(t)
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("test Postfix delivered %d messages, want %d, within %v\nmaillog:\n%s",
				len(msgs), n, timeout, p.Log())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// MessagesTo filters msgs by envelope recipient (case-insensitive).
func MessagesTo(msgs []Message, rcpt string) []Message {
	var out []Message
	for _, m := range msgs {
		if strings.EqualFold(m.Recipient, rcpt) {
			out = append(out, m)
		}
	}
	return out
}

// readMaildir reads new/ and cur/ of a Maildir; a Maildir not created yet
// (nothing delivered) is empty.
func readMaildir(dir string) ([]Message, error) {
	type file struct {
		path string
		mod  time.Time
	}
	var files []file
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("listing %s/%s: %w", dir, sub, err)
		}
		for _, e := range entries {
			if e.IsDir() {
				continue
			}
			info, err := e.Info()
			if err != nil {
				return nil, fmt.Errorf("stat %s: %w", e.Name(), err)
			}
			files = append(files, file{filepath.Join(dir, sub, e.Name()), info.ModTime()})
		}
	}
	// Maildir names start with the delivery time in seconds; the
	// modification time orders deliveries within a second too.
	sort.Slice(files, func(i, j int) bool {
		if !files[i].mod.Equal(files[j].mod) {
			return files[i].mod.Before(files[j].mod)
		}
		return files[i].path < files[j].path
	})
	msgs := make([]Message, 0, len(files))
	for _, f := range files {
		raw, err := os.ReadFile(f.path)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", f.path, err)
		}
		msgs = append(msgs, parseMessage(f.path, raw))
	}
	return msgs, nil
}
