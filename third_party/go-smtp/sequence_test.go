package smtp_test

import (
	"io"
	"strings"
	"testing"
)

// Commands out of sequence get 503 5.5.1 (RFC 5321 sections 4.1.4 and
// 4.3.2; 502 is "not implemented"), and DATA or BDAT in a transaction
// without a recipient 554 5.5.1, the codes Postfix gives; the transaction
// goes on where it was. Each case ends with a NOOP, whose 250 shows that
// nothing was left in the stream (a refused BDAT's chunk is dropped).
func TestServerCommandSequence(t *testing.T) {
	const mail, rcpt = "MAIL FROM:<root@nsa.gov>\r\n", "RCPT TO:<root@gchq.gov.uk>\r\n"
	for _, tc := range []struct {
		name  string
		input string
		want  []string // reply prefixes, one per command
	}{
		{"RCPT before MAIL", rcpt, []string{"503 5.5.1 "}},
		{"DATA before MAIL", "DATA\r\n", []string{"503 5.5.1 "}},
		{"BDAT before MAIL", "BDAT 4 LAST\r\nNOOP", []string{"503 5.5.1 "}},
		{"nested MAIL", mail + mail + rcpt, []string{"250 ", "503 5.5.1 Nested MAIL command", "250 "}},
		{"nested MAIL after RCPT", mail + rcpt + mail, []string{"250 ", "250 ", "503 5.5.1 Nested MAIL command"}},
		{"DATA without RCPT", mail + "DATA\r\n", []string{"250 ", "554 5.5.1 No valid recipients"}},
		{"BDAT without RCPT", mail + "BDAT 4 LAST\r\nNOOP", []string{"250 ", "554 5.5.1 No valid recipients"}},
		{"AUTH inside a transaction", mail + "AUTH PLAIN\r\n", []string{"250 ", "503 5.5.1 MAIL transaction in progress"}},
		{"RCPT after DATA", mail + rcpt + "DATA\r\nhi\r\n.\r\n" + rcpt, []string{"250 ", "250 ", "354 ", "250 ", "503 5.5.1 "}},
		{"BDAT after DATA", mail + rcpt + "DATA\r\nhi\r\n.\r\nBDAT 4 LAST\r\nNOOP", []string{"250 ", "250 ", "354 ", "250 ", "503 5.5.1 "}},
		{"DATA after a BDAT chunk", mail + rcpt + "BDAT 4\r\nhi\r\nDATA\r\nBDAT 0 LAST\r\n",
			[]string{"250 ", "250 ", "250 ", "503 5.5.1 ", "250 "}},
		{"MAIL after a BDAT chunk", mail + rcpt + "BDAT 4\r\nhi\r\n" + mail + "BDAT 0 LAST\r\n",
			[]string{"250 ", "250 ", "250 ", "503 5.5.1 Nested MAIL command", "250 "}},
		{"RCPT after a BDAT chunk", mail + rcpt + "BDAT 4\r\nhi\r\n" + rcpt + "BDAT 0 LAST\r\n",
			[]string{"250 ", "250 ", "250 ", "503 5.5.1 ", "250 "}},
		{"MAIL after RSET", mail + "RSET\r\n" + mail, []string{"250 ", "250 ", "250 "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be, s, c, scanner, _ := testServerEhlo(t)
			defer s.Close()
			defer c.Close()
			io.WriteString(c, tc.input+"NOOP\r\n")
			for i, want := range append(tc.want, "250 2.0.0 I have successfully done nothing") {
				if !scanner.Scan() {
					t.Fatalf("reply %d: %v", i, scanner.Err())
				}
				if got := scanner.Text(); !strings.HasPrefix(got, want) {
					t.Fatalf("reply %d: %q, want %q...", i, got, want)
				}
			}
			for _, m := range append(be.messages, be.anonmsgs...) {
				if m.From != "root@nsa.gov" || len(m.To) != 1 {
					t.Errorf("message from %q to %q", m.From, m.To)
				}
			}
		})
	}
}

// A refused nested MAIL never reaches the session: its Mail runs once per
// transaction (a backend that counts messages at MAIL counts each once).
func TestServerNestedMailNotPassedOn(t *testing.T) {
	be, s, c, scanner, _ := testServerEhlo(t)
	defer s.Close()
	defer c.Close()
	io.WriteString(c, "MAIL FROM:<first@example.org>\r\nMAIL FROM:<second@example.org>\r\n"+
		"RCPT TO:<to@example.org>\r\nDATA\r\nhi\r\n.\r\n")
	for _, want := range []string{"250 ", "503 ", "250 ", "354 ", "250 "} {
		scanner.Scan()
		if got := scanner.Text(); !strings.HasPrefix(got, want) {
			t.Fatalf("reply %q, want %q...", got, want)
		}
	}
	if len(be.anonmsgs) != 1 || be.anonmsgs[0].From != "first@example.org" {
		t.Fatalf("messages %+v, want one from first@example.org", be.anonmsgs)
	}
}
