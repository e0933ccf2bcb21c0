package main

import (
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/proxy/proxytest"
)

// TestBDATLeadingDotKeptE2E: a BDAT chunk is the message as sent, with no
// dot-stuffing to undo, so a line that starts with a dot reaches the MTA
// with its dot, also right after a bare LF (where Postern, for DATA, drops
// the stuffing dot go-smtp's DATA reader left). The session asks go-smtp
// how the message came (Conn.DataByBDAT, go-smtp patch
// server-data-by-bdat); taken for DATA, the line after the bare LF lost
// its dot.
func TestBDATLeadingDotKeptE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	p := startPostern(t, pf.Addr)
	msg := "Subject: bdat leading dots\r\n\r\nfirst\n.after a bare LF\r\n.after CRLF\r\n"
	if reply := sendBDATChunks(t, p.StartTLS, []string{msg}); !strings.HasPrefix(reply, "250") {
		t.Fatalf("BDAT LAST: %q, want 250", reply)
	}
	msgs := pf.WaitMessages(t, 1, 30*time.Second)
	body := string(msgs[0].Data)
	for _, line := range []string{"\n.after a bare LF", "\n.after CRLF"} {
		if !strings.Contains(body, line) {
			t.Errorf("Postfix stored no line %q:\n%s", line[1:], msgs[0].Raw)
		}
	}
}
