package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/policy"
	"github.com/postern/postern/proxy/proxytest"
)

// FuzzHeaderFromAgreement sends fuzz bytes as one message, in two BDAT
// chunks cut where the fuzzer says, through a server that checks the From:
// header in warn mode (so every message the copier takes reaches the
// upstream), and holds the check to what the recording upstream received:
//   - the check's verdict (its log line's reason, or none when owned) is
//     the verdict on the upstream's header section: the header block the
//     check parsed is the one the upstream got;
//   - a message the check passed has, read the way a lenient reader or
//     the upstream would (readerAuthors, independent of the check's code),
//     exactly one From: and at most one Sender:, every address in them
//     the login's own.
//
// Two servers take each message: one without a Received header, so the
// upstream's header section is the client's, and one in anonymous mode,
// which adds its Received header and strips X-Originating-IP.
func FuzzHeaderFromAgreement(f *testing.F) {
	f.Add([]byte("From: "+testUser+"\r\nSubject: x\r\nFrom: ceo@bank.test"), uint16(0))
	f.Add([]byte("Subject: x\r\nFrom: "+testUser+"\r\n <ceo@bank.test>"), uint16(0))
	f.Add([]byte("From: "+testUser+"\r\nSubject: x\r\nFrom: ceo@bank.test"), uint16(40))
	f.Add([]byte("From: "+testUser+"\r\nSubject: x\r\n\r\nbody"), uint16(10))
	f.Add([]byte("From: "+testUser+"\r\nSubject: no body\r\n"), uint16(5))
	f.Add([]byte("Subject: x\r\nFrom : ceo@bank.test"), uint16(0))
	f.Add([]byte("Subject: x\r\nSender: ceo@bank.test\r\nFrom: "+testUser+"\r\n\r\n"), uint16(0))
	f.Add([]byte("X-Originating-IP: [192.0.2.1]\r\n From: ceo@bank.test\r\nFrom: "+testUser+"\r\n\r\n"), uint16(3))
	f.Add([]byte("from: =?utf-8?q?Al=C3=AFce?= <"+testUser+">\r\n\r\n"), uint16(0))

	plainLog, anonLog := &logBuffer{}, &logBuffer{}
	plain := startServer(f, proxytest.UpstreamOptions{}, warnHeaderFrom(policy.ReceivedNone, plainLog))
	anon := startServer(f, proxytest.UpstreamOptions{}, warnHeaderFrom(policy.ReceivedAnonymous, anonLog))
	f.Fuzz(func(t *testing.T, msg []byte, cut uint16) {
		if len(msg) > 256*1024 { // the server's limit is 1 MiB
			return
		}
		i := int(cut) % (len(msg) + 1)
		for _, e := range []struct {
			env     *testEnv
			log     *logBuffer
			withOwn bool // the upstream's header section is the client's
		}{{plain, plainLog, true}, {anon, anonLog, false}} {
			got, verdict, ok := sendBDAT(t, e.env, e.log, msg[:i], msg[i:])
			if !ok {
				continue // the copier refused it: nothing to compare
			}
			if e.withOwn {
				upWhy, _ := policy.HeaderFromOwned(upstreamHeader(t, got), nil, []string{testUser}, nil)
				if upWhy != verdict {
					t.Fatalf("the check said %q, the upstream's header says %q\nsent %q\nupstream got %q",
						verdict, upWhy, msg, got)
				}
			}
			if verdict == "" {
				if why := readerAuthors(got, testUser); why != "" {
					t.Fatalf("the check passed it, but the upstream's header has %s\nsent %q\nupstream got %q",
						why, msg, got)
				}
			}
		}
	})
}

// warnHeaderFrom configures a fuzz server: --check-header-from warn, the
// Received mode given, and a JSON log into log that sendBDAT reads back.
func warnHeaderFrom(received policy.ReceivedMode, log *logBuffer) func(*Config) {
	return func(c *Config) {
		c.HeaderFrom = policy.HeaderFromWarn
		c.Received = received
		c.Log = slog.New(slog.NewJSONHandler(log, nil))
	}
}

// upstreamHeader is the header section of a message as the upstream got
// it, read as the check reads a client's.
func upstreamHeader(t *testing.T, data []byte) policy.HeaderBlock {
	block, _, err := policy.ReadHeaderBlock(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return block
}

// sendBDAT sends one message as two BDAT chunks (the second LAST) and
// returns what the upstream got, the check's verdict ("" for owned, else
// the reason it logged), and whether the upstream got the message.
func sendBDAT(t *testing.T, env *testEnv, log *logBuffer, first, last []byte) ([]byte, string, bool) {
	before, logged := len(env.up.Messages()), logLines(log)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", env.tls,
		&tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + testUser + "\x00" + testPass))
	var b bytes.Buffer
	fmt.Fprintf(&b, "EHLO fuzz.test\r\nAUTH PLAIN %s\r\nMAIL FROM:<%s>\r\nRCPT TO:<b@example.test>\r\n", ir, testUser)
	fmt.Fprintf(&b, "BDAT %d\r\n%s", len(first), first)
	fmt.Fprintf(&b, "BDAT %d LAST\r\n%s", len(last), last)
	b.WriteString("QUIT\r\n")
	go func() {
		conn.Write(b.Bytes())
	}()
	replies, _ := io.ReadAll(conn)
	if !bytes.Contains(replies, []byte("221 ")) {
		t.Fatalf("the session did not end with QUIT's reply:\n%s", replies)
	}
	msgs := env.up.Messages()[before:]
	var verdict string
	for _, rec := range logRecords(t, log, logged) {
		if rec["msg"] == "header from rejected" {
			verdict, _ = rec["reason"].(string)
		}
	}
	switch len(msgs) {
	case 0:
		return nil, verdict, false
	case 1:
		return msgs[0].Data, verdict, true
	}
	t.Fatalf("%d messages reached the upstream, want at most 1", len(msgs))
	return nil, "", false
}

// readerAuthors reads a header section the way a lenient reader might and
// returns "" when it shows exactly one From: and at most one Sender:, with
// only owner's address in them; else what is wrong. Any line with a colon
// that does not start with white space opens a field (spaces before the
// colon and case do not matter), white space starts a continuation, and
// the header section ends at the first empty line.
func readerAuthors(data []byte, owner string) string {
	fields := map[string][]string{}
	var last string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, len(data)+1)
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if vs := fields[last]; len(vs) > 0 {
				vs[len(vs)-1] += line
			}
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		last = strings.ToLower(strings.TrimRight(name, " \t"))
		fields[last] = append(fields[last], value)
	}
	if n := len(fields["from"]); n != 1 {
		return fmt.Sprintf("%d From: fields", n)
	}
	if n := len(fields["sender"]); n > 1 {
		return fmt.Sprintf("%d Sender: fields", n)
	}
	for _, vs := range [][]string{fields["from"], fields["sender"]} {
		for _, v := range vs {
			list, err := mail.ParseAddressList(v)
			if err != nil {
				return fmt.Sprintf("an unparsable author field %q", v)
			}
			for _, a := range list {
				if !strings.EqualFold(a.Address, owner) {
					return fmt.Sprintf("a foreign author %q", a.Address)
				}
			}
		}
	}
	return ""
}

// logRecords returns the JSON log records written to l since the first
// skip ones.
func logRecords(t *testing.T, l *logBuffer, skip int) []map[string]any {
	lines := strings.Split(strings.TrimSuffix(l.String(), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		lines = nil
	}
	var recs []map[string]any
	for _, line := range lines[min(skip, len(lines)):] {
		rec := map[string]any{}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		recs = append(recs, rec)
	}
	return recs
}

func logLines(l *logBuffer) int { return strings.Count(l.String(), "\n") }
