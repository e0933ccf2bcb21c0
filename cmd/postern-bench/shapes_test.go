package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// writeRecorder is the server side of a net.Pipe: it answers like a sink
// and records every write the client made (a Read on a net.Pipe returns
// the data of one Write at most, so the chunks are the client's writes).
func writeRecorder(t *testing.T, conn net.Conn) <-chan []string {
	t.Helper()
	done := make(chan []string, 1)
	go func() {
		var writes []string
		defer func() { done <- writes }()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(conn, "220 sink ready\r\n")
		buf := make([]byte, 256*1024)
		var pending []byte
		inData := false
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			writes = append(writes, string(buf[:n]))
			pending = append(pending, buf[:n]...)
			for {
				if inData {
					i := bytes.Index(pending, []byte("\r\n.\r\n"))
					if i < 0 {
						break
					}
					pending = pending[i+5:]
					inData = false
					io.WriteString(conn, "250 queued\r\n")
					continue
				}
				i := bytes.Index(pending, []byte("\r\n"))
				if i < 0 {
					break
				}
				line := strings.ToUpper(string(pending[:i]))
				pending = pending[i+2:]
				switch {
				case strings.HasPrefix(line, "EHLO"):
					io.WriteString(conn, "250-sink\r\n250 PIPELINING\r\n")
				case line == "DATA":
					inData = true
					pending = append([]byte("\r\n"), pending...) // the message may end at once
					io.WriteString(conn, "354 go ahead\r\n")
				case line == "QUIT":
					io.WriteString(conn, "221 bye\r\n")
					return
				default:
					io.WriteString(conn, "250 ok\r\n")
				}
			}
		}
	}()
	return done
}

// TestClientShapesWrites: each --shape writes what shapes.go says, write by
// write: the commands one at a time or pipelined, the message with its
// final dot in one write, or (dot-apart) the dot in a write of its own.
func TestClientShapesWrites(t *testing.T) {
	msg := buildMessage("a@example.test", "b@example.net", 4096)
	mail, rcpt := "MAIL FROM:<a@example.test>\r\n", "RCPT TO:<b@example.net>\r\n"
	body := string(msg) + ".\r\n"
	for _, c := range []struct {
		shape string
		want  []string // after EHLO, up to QUIT
	}{
		{shapeWaiting, []string{"MAIL FROM:<a@example.test>", rcpt, "DATA\r\n", body}},
		{shapeSerial, []string{mail, rcpt, "DATA\r\n", body}},
		{shapePipelining, []string{mail + rcpt + "DATA\r\n", body}},
		{shapeDotApart, []string{mail, rcpt, "DATA\r\n", string(msg), ".\r\n"}},
	} {
		t.Run(c.shape, func(t *testing.T) {
			cfg := loadConfig{Addr: "pipe", Mode: "plain", From: "a@example.test", To: "b@example.net",
				Shape: c.shape, Concurrency: 1, Connections: 1, Size: 4096, Duration: time.Second}
			if err := cfg.validate(); err != nil {
				t.Fatal(err)
			}
			cli, srv := net.Pipe()
			defer cli.Close()
			writes := writeRecorder(t, srv)
			var cl client
			if c.shape == shapeWaiting {
				sc := smtp.NewClient(cli)
				if err := sc.Hello("postern-bench.invalid"); err != nil {
					t.Fatal(err)
				}
				cl = &goSMTPClient{c: sc, from: cfg.From, to: cfg.To, stop: func() bool { return true }}
			} else {
				rc := &rawClient{conn: cli, timeout: 5 * time.Second, shape: c.shape}
				rc.stop = func() bool { return true }
				if err := rc.handshake(context.Background(), &cfg, nil); err != nil {
					t.Fatal(err)
				}
				rc.mail, rc.rcpt = "MAIL FROM:<a@example.test>", "RCPT TO:<b@example.net>"
				rc.envelope = []byte(mail + rcpt + "DATA\r\n")
				cl = rc
			}
			if err := cl.send(msg); err != nil {
				t.Fatal(err)
			}
			if err := cl.quit(); err != nil {
				t.Fatal(err)
			}
			got := <-writes
			if len(got) < 2 || !strings.HasPrefix(got[0], "EHLO ") || got[len(got)-1] != "QUIT\r\n" {
				t.Fatalf("writes %q: want EHLO first and QUIT last", got)
			}
			got = got[1 : len(got)-1]
			if len(got) != len(c.want) {
				t.Fatalf("%d writes for one message, want %d: %q", len(got), len(c.want), short(got))
			}
			for i, w := range c.want {
				if !strings.HasPrefix(got[i], w) || (i > 0 && got[i] != w) {
					t.Errorf("write %d = %q, want %q", i, short(got[i:i+1]), short([]string{w}))
				}
			}
		})
	}
}

// short abbreviates long writes for error messages.
func short(ws []string) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		if len(w) > 60 {
			w = w[:30] + "..." + w[len(w)-20:]
		}
		out[i] = w
	}
	return out
}

// TestShapeFlag: --pipelining is --shape pipelining; anything else with it,
// or an unknown shape, is an error; no flag is the go-smtp client.
func TestShapeFlag(t *testing.T) {
	base := loadConfig{Addr: "x:1", Mode: "plain", From: "a@b", To: "c@d", Concurrency: 1, Connections: 1, Size: 4096, Duration: time.Second}
	for _, c := range []struct {
		shape      string
		pipelining bool
		want       string // "" for an error
	}{
		{"", false, shapeWaiting},
		{"", true, shapePipelining},
		{shapePipelining, true, shapePipelining},
		{shapeDotApart, false, shapeDotApart},
		{shapeSerial, true, ""},
		{"fast", false, ""},
	} {
		cfg := base
		cfg.Shape, cfg.Pipelining = c.shape, c.pipelining
		err := cfg.validate()
		if c.want == "" {
			if err == nil {
				t.Errorf("--shape %q --pipelining=%v: no error", c.shape, c.pipelining)
			}
			continue
		}
		if err != nil || cfg.Shape != c.want || cfg.Pipelining != (c.want == shapePipelining) {
			t.Errorf("--shape %q --pipelining=%v: shape %q pipelining %v err %v, want %q", c.shape, c.pipelining, cfg.Shape, cfg.Pipelining, err, c.want)
		}
	}
}

// TestReportShapes: each client shape of a workload gets its own table and
// target lines after the default shape's; lines written before --shape
// (pipelining true, no shape) count as the pipelining shape.
func TestReportShapes(t *testing.T) {
	var in bytes.Buffer
	add := func(peer, shape string, pipelining bool, rate float64) {
		s := Summary{Workload: "W1", Label: peer, Mode: "starttls", Shape: shape, Pipelining: pipelining, MsgPerSec: rate,
			MsgP99: 10, Messages: 100, Connections: 10, Concurrency: 5, Size: 4096}
		b, _ := json.Marshal(s)
		in.Write(b)
		in.WriteString("\n")
	}
	add("postern", shapeWaiting, false, 300)
	add("nginx-fastauth", shapeWaiting, false, 200)
	add("postern", shapePipelining, true, 500)
	add("nginx-fastauth", "", true, 250)
	res, err := readResults(&in)
	if err != nil {
		t.Fatal(err)
	}
	var md, svg bytes.Buffer
	writeReport(&md, res, "", "", time.Unix(0, 0))
	writeChart(&svg, res)
	got := md.String()
	for _, want := range []string{
		"## W1 steady: several 4 KiB messages per connection\n",
		"client shape `waiting`: each command in one write and a wait for its reply, the message with its final dot in one write",
		"- Target messages/s ≥ 1.2× the fastest peer (nginx-fastauth): Postern is 1.50× — **met**.",
		"## W1 steady: several 4 KiB messages per connection — client shape pipelining\n",
		"client shape `pipelining`: MAIL, RCPT and DATA in one write",
		"- Target W1 (pipelining client) messages/s ≥ 1.2× the fastest peer (nginx-fastauth): Postern is 2.00× — **met**.",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if strings.Index(got, "client shape pipelining") < strings.Index(got, "## W1 steady: several 4 KiB messages per connection\n") {
		t.Error("the pipelining table comes before the default shape's")
	}
	if !strings.Contains(svg.String(), "W1 steady (messages/s, median), client shape pipelining") {
		t.Errorf("chart lacks the pipelining shape:\n%s", svg.String())
	}
}
