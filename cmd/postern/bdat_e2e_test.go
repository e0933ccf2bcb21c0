package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/proxy/proxytest"
)

// TestBDATAbandonedNeverDelivered abandons a BDAT transfer every way a client
// can (RSET, QUIT, EHLO, disconnect, a disconnect inside a LAST chunk, a chunk
// over the size limit) against a real Postfix: Postfix must never see a final
// dot, so nothing is queued or delivered, while a complete BDAT ... LAST
// message arrives byte for byte.
func TestBDATAbandonedNeverDelivered(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	// No pool: every session's upstream connection ends with the session,
	// so Postfix's "disconnect from" lines count the finished sessions.
	p := startPostern(t, pf.Addr, "--max-message-size", "100000", "--upstream-pool", "0")

	chunk := func(subject string, size int) string {
		head := "Subject: " + subject + "\r\n\r\n"
		line := strings.Repeat("x", 70) + "\r\n"
		var b strings.Builder
		b.WriteString(head)
		for b.Len()+len(line) <= size {
			b.WriteString(line)
		}
		b.WriteString(strings.Repeat("y", size-b.Len()))
		return b.String()
	}
	start := func(t *testing.T) *textConn {
		c := dialTLSText(t, p.StartTLS, aliceLogin, alicePass)
		c.send("MAIL FROM:<" + aliceLogin + ">")
		c.expect("250")
		c.send("RCPT TO:<friend@example.test>")
		c.expect("250")
		return c
	}
	firstChunk := func(c *textConn, subject string) {
		c.raw(fmt.Sprintf("BDAT 1000\r\n%s", chunk(subject, 1000)))
		c.expect("250")
	}
	variants := []struct {
		name    string
		abandon func(t *testing.T, c *textConn)
	}{
		{"RSET", func(t *testing.T, c *textConn) {
			firstChunk(c, "abandoned-rset")
			c.send("RSET")
			c.expect("250")
			c.send("QUIT")
			c.expect("221")
		}},
		{"QUIT", func(t *testing.T, c *textConn) {
			firstChunk(c, "abandoned-quit")
			c.send("QUIT")
			c.expect("221")
		}},
		{"EHLO", func(t *testing.T, c *textConn) {
			firstChunk(c, "abandoned-ehlo")
			c.send("EHLO again.test")
			c.expect("250")
			c.send("QUIT")
			c.expect("221")
		}},
		{"disconnect", func(t *testing.T, c *textConn) {
			firstChunk(c, "abandoned-disconnect")
			c.conn.Close()
		}},
		{"disconnect inside the LAST chunk", func(t *testing.T, c *textConn) {
			// BDAT 2000 LAST announces 2000 octets; the client sends 1000
			// and vanishes. The chunk is short: the message never ended.
			c.raw("BDAT 2000 LAST\r\n" + chunk("abandoned-short-last", 1000))
			c.conn.Close()
		}},
		{"disconnect inside a later LAST chunk", func(t *testing.T, c *textConn) {
			firstChunk(c, "abandoned-short-second")
			c.raw("BDAT 5000 LAST\r\n" + strings.Repeat("z", 70) + "\r\n")
			c.conn.Close()
		}},
		{"second chunk over the size limit", func(t *testing.T, c *textConn) {
			c.raw("BDAT 60000\r\n" + chunk("abandoned-oversize", 60000))
			c.expect("250")
			c.raw("BDAT 60000 LAST\r\n" + chunk("oversize-second-chunk", 60000))
			c.expect("552")
			c.send("QUIT")
			c.expect("221")
		}},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			ended := strings.Count(pf.Log(), "disconnect from")
			v.abandon(t, start(t))
			// Wait until Postfix has seen this session's upstream
			// connection end, however it ended.
			deadline := time.Now().Add(30 * time.Second)
			for strings.Count(pf.Log(), "disconnect from") <= ended {
				if time.Now().After(deadline) {
					t.Fatalf("Postfix saw no upstream connection end:\n%s", pf.Log())
				}
				time.Sleep(25 * time.Millisecond)
			}
			pf.WaitQueueEmpty(t, 30*time.Second)
			if n := strings.Count(pf.Log(), "status=sent"); n != 0 {
				t.Fatalf("Postfix delivered %d abandoned messages:\n%s", n, pf.Log())
			}
			if msgs := pf.Messages(t); len(msgs) != 0 {
				t.Fatalf("abandoned message delivered:\n%s", msgs[0].Data)
			}
		})
	}

	t.Run("complete BDAT LAST is delivered byte for byte", func(t *testing.T) {
		c := start(t)
		first := chunk("bdat-complete", 3000)
		second := strings.Repeat("0123456789", 99) + "\r\n.\r\n..dot\r\n.\r\n"
		c.raw(fmt.Sprintf("BDAT %d\r\n%s", len(first), first))
		c.expect("250")
		c.raw(fmt.Sprintf("BDAT %d LAST\r\n%s", len(second), second))
		if r := c.expect("250 2.0.0 Ok: "); !queuedByPostfix(r) {
			t.Fatalf("want Postfix's 250, got %q", r)
		}
		c.send("QUIT")
		c.expect("221")
		msgs := pf.WaitMessages(t, 1, 30*time.Second)
		m := findSubject(t, msgs, "bdat-complete")
		if !bytes.HasSuffix(m.Data, []byte(first+second)) {
			t.Fatalf("delivered message is not what was sent:\n%q", m.Data)
		}
		if len(msgs) != 1 {
			t.Fatalf("%d messages delivered, want only the complete one", len(msgs))
		}
	})
	// The binary runs under the race detector: abandoned transfers are
	// where Data's goroutine and the session's verbs meet.
	if log := p.Log(); strings.Contains(log, "DATA RACE") || strings.Contains(log, "panic") {
		t.Fatalf("postern:\n%s", log)
	}
}
