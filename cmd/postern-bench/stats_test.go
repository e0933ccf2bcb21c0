package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func durations(ms ...int) []time.Duration {
	out := make([]time.Duration, len(ms))
	for i, m := range ms {
		out[i] = time.Duration(m) * time.Millisecond
	}
	return out
}

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	cases := []struct {
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 50, 0},
		{durations(7), 50, 7 * time.Millisecond},
		{durations(7), 99, 7 * time.Millisecond},
		{durations(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{durations(1, 2, 3, 4), 51, 3 * time.Millisecond},
		{durations(1, 2, 3, 4), 100, 4 * time.Millisecond},
		{durations(1, 2, 3, 4), 0, 1 * time.Millisecond},
		{hundred, 50, 50 * time.Millisecond},
		{hundred, 90, 90 * time.Millisecond},
		{hundred, 99, 99 * time.Millisecond},
		{hundred, 99.5, 100 * time.Millisecond},
		{hundred[:10], 99, 10 * time.Millisecond},
	}
	for _, c := range cases {
		if got := percentile(c.in, c.p); got != c.want {
			t.Errorf("percentile(%d values, %v) = %v, want %v", len(c.in), c.p, got, c.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	r := &recorder{}
	for _, m := range []int{30, 10, 20, 40} { // unsorted on purpose
		r.message(time.Duration(m)*time.Millisecond, 1<<20)
	}
	r.setup(5*time.Millisecond, fakeTLS{tls.X25519MLKEM768})
	r.setup(1*time.Millisecond, fakeTLS{tls.X25519})
	r.connDone()
	r.connDone()
	for i := 0; i < 8; i++ {
		r.errs.add(fmt.Errorf("error %d", i%7))
	}
	r.errs.add(nil)
	s := r.summarize(2 * time.Second)
	if s.Messages != 4 || s.Connections != 2 {
		t.Fatalf("counts: %+v", s)
	}
	if s.MsgPerSec != 2 || s.ConnPerSec != 1 || s.MiBPerSec != 2 {
		t.Errorf("rates: %v msg/s %v conn/s %v MiB/s", s.MsgPerSec, s.ConnPerSec, s.MiBPerSec)
	}
	if s.MsgP50 != 20 || s.MsgP90 != 40 || s.MsgP99 != 40 || s.SetupP50 != 1 || s.SetupP99 != 5 {
		t.Errorf("percentiles: %+v", s)
	}
	if s.Errors != 8 || len(s.ErrorTexts) != 5 || s.ErrorTexts[0] != "error 0" {
		t.Errorf("errors: %d %q", s.Errors, s.ErrorTexts)
	}
	var buf bytes.Buffer
	if err := s.write(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var back Summary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &back); err != nil {
		t.Fatalf("last line is not JSON: %v\n%s", err, buf.String())
	}
	if back.TLSGroup != "X25519 ×1, X25519MLKEM768 ×1" {
		t.Errorf("negotiated groups: %q", back.TLSGroup)
	}
	if back.MsgP99 != 40 || back.Errors != 8 {
		t.Errorf("round trip: %+v", back)
	}
	if !strings.Contains(buf.String(), "p99 40.00 ms") {
		t.Errorf("human summary:\n%s", buf.String())
	}
}

func TestSummarizeEmpty(t *testing.T) {
	s := (&recorder{}).summarize(0)
	if s.Messages != 0 || s.MsgPerSec != 0 || s.MsgP99 != 0 {
		t.Errorf("%+v", s)
	}
}

func TestBuildMessage(t *testing.T) {
	for _, size := range []int{256, 300, 4096, 4097, 4098, 4099, 50 << 20} {
		m := buildMessage("a@example.test", "b@example.net", size)
		if len(m) != size && !(len(m) == size+1) {
			t.Errorf("size %d: got %d bytes", size, len(m))
		}
		if !bytes.HasSuffix(m, []byte("\r\n")) {
			t.Errorf("size %d: does not end in CRLF", size)
		}
		if bytes.Contains(m, []byte("\n.")) || bytes.Contains(bytes.ReplaceAll(m, []byte("\r\n"), nil), []byte("\n")) {
			t.Errorf("size %d: dot at line start or bare LF", size)
		}
	}
}

func TestWriteDotStuffed(t *testing.T) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	writeDotStuffed(w, []byte(".a\r\nb\r\n..c\r\n"))
	w.Flush()
	if got, want := buf.String(), "..a\r\nb\r\n...c\r\n"; got != want {
		t.Errorf("got %q want %q", got, want)
	}
}

func TestParseStatus(t *testing.T) {
	in := "Name:\tpostern\nVmPeak:\t 1000 kB\nVmHWM:\t   2048 kB\nVmRSS:\t   1024 kB\nThreads: 5\n"
	m, err := parseStatus(bufio.NewScanner(strings.NewReader(in)))
	if err != nil || m.RSS != 1024 || m.HWM != 2048 {
		t.Errorf("%+v %v", m, err)
	}
	if _, err := parseStatus(bufio.NewScanner(strings.NewReader("Name: kthreadd\n"))); err == nil {
		t.Error("no VmRSS: want an error")
	}
}

func TestReport(t *testing.T) {
	var in bytes.Buffer
	add := func(wl, peer string, rate, p99 float64) {
		s := Summary{Workload: wl, Label: peer, MsgPerSec: rate, MsgP99: p99, Messages: 100, Connections: 10, Concurrency: 5, Size: 4096}
		if rate > 0 {
			s.CPUmsPerMsg = 1000 / rate
		}
		b, _ := json.Marshal(s)
		in.Write(b)
		in.WriteString("\n")
	}
	for _, r := range []float64{100, 300, 200} {
		add("W1", "postern", r, 5)
		add("W1", "postfix", r/2, 10)
		add("W1", "sink", r*3, 1)
		add("W1", "sink-starttls", r*2.5, 1)
		add("W1", "nginx-fastauth", r/4, 4)
		add("W5", "auth-concurrency=0", 0, 0)
		add("W5", "auth-concurrency=default", 0, 0)
	}
	in.WriteString("not json\n")
	res, err := readResults(&in)
	if err != nil {
		t.Fatal(err)
	}
	if got := res["W1"]["postern"].median(msgRate); got != 200 {
		t.Errorf("median = %v", got)
	}
	if p, _ := res.fastest("W1"); p != "postfix" {
		t.Errorf("fastest = %q (the sink is a ceiling, not a peer)", p)
	}
	var md, svg bytes.Buffer
	writeReport(&md, res, "", "", time.Unix(0, 0))
	writeChart(&svg, res)
	for _, want := range []string{
		"| postern | **cache**: bcrypt once, then memory | 3 | 200.0 | 1.00 |", "| postfix | bcrypt every AUTH (Dovecot) | 3 | 100.0 | 0.50 |",
		"fastest peer (postfix): Postern is 2.00× — **met**", "CPU per message ≤ the fastest peer's: 5.000 ms vs 10.000 ms — **met**",
		"credential cache: postern, nginx-fastauth", "## W5 login storm", "| auth-concurrency=default | 3 |",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, md.String())
		}
	}
	if !strings.HasPrefix(svg.String(), "<svg") || !strings.Contains(svg.String(), ">postfix<") {
		t.Errorf("chart:\n%s", svg.String())
	}
	if medianOf([]float64{4, 1, 3, 2}) != 2.5 {
		t.Error("even median")
	}
}

// TestReportW2x: W2x gets its own table and targets, W2's and W2x's targets
// stand side by side, and each row says which key exchange it did.
func TestReportW2x(t *testing.T) {
	var in bytes.Buffer
	add := func(wl, peer string, rate float64, offered, group string) {
		mode := "starttls"
		if peer == "sink" {
			mode, group = "plain", ""
		}
		s := Summary{Workload: wl, Label: peer, Mode: mode, MsgPerSec: rate, CPUmsPerMsg: 1000 / rate, MsgP99: 10,
			Messages: 100, Connections: 100, Concurrency: 5, Size: 4096, TLSOffered: offered, TLSGroup: group}
		b, _ := json.Marshal(s)
		in.Write(b)
		in.WriteString("\n")
	}
	add("W2", "postern", 118, "", "X25519MLKEM768")
	add("W2", "nginx-fastauth", 100, "", "X25519")
	add("W2", "sink", 500, "", "")
	add("W2x", "postern", 130, "X25519", "X25519")
	add("W2x", "nginx-fastauth", 100, "X25519", "X25519")
	add("W2x", "sink", 500, "X25519", "")
	res, err := readResults(&in)
	if err != nil {
		t.Fatal(err)
	}
	var md, svg bytes.Buffer
	writeReport(&md, res, "", "", time.Unix(0, 0))
	writeChart(&svg, res)
	got := md.String()
	for _, want := range []string{
		"## W2x handshake-heavy, every peer on X25519",
		"the client offers key exchange groups X25519 only (`--tls-groups`)",
		"| postern | **cache**: bcrypt once, then memory | 1 | 130.0 | 1.00 | 0.0 | 10.0 | 0.0 | 0.0 | 7.692 | 0 | X25519 |",
		"| nginx-fastauth | **memory**: auth_http bcrypt once, then memory | 1 | 100.0 | 0.77 | 0.0 | 10.0 | 0.0 | 0.0 | 10.000 | 0 | X25519 |",
		"| sink | none (any AUTH) | 1 | 500.0 | 3.85 | 0.0 | 10.0 | 0.0 | 0.0 | 2.000 | 0 | no TLS |",
		"- Target W2x (all peers X25519) messages/s ≥ 1.2× the fastest peer (nginx-fastauth): Postern is 1.30× — **met**.",
		"- Target W2x (all peers X25519) CPU per message ≤ the fastest peer's: 7.692 ms vs 10.000 ms — **met**.",
		"- Key exchange: every TLS row negotiated X25519 (the client offered: X25519).",
		"Key exchange differs between rows (the client offered: Go's default, X25519MLKEM768 first): postern X25519MLKEM768, nginx-fastauth X25519. W2x below",
		"Why W2x: nginx 1.22 is linked with Debian 12's OpenSSL 3.0, which has no ML-KEM",
		"| messages/s ≥ 1.2× | 1.18× nginx-fastauth — **missed** (missed by 2%) | 1.30× nginx-fastauth — **met** |",
		"| CPU ms/msg ≤ | 8.475 vs 10.000 ms — **met** | 7.692 vs 10.000 ms — **met** |",
		"| key exchange negotiated | postern X25519MLKEM768, nginx-fastauth X25519 | postern X25519, nginx-fastauth X25519 |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if strings.Index(got, "## W2 handshake") > strings.Index(got, "## W2x") {
		t.Error("W2x comes before W2")
	}
	if !strings.Contains(svg.String(), "W2x one message per connection, all peers X25519") {
		t.Errorf("chart lacks W2x:\n%s", svg.String())
	}
}

func TestIsReply(t *testing.T) {
	if isReply(errors.New("EOF")) {
		t.Error("plain error is not a reply")
	}
}
