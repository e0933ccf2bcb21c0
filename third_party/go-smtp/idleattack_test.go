package smtp_test

// Attacks on the idle wait without buffers (idlebuffers.go's waitInput):
// command lines and messages cut around the 128-byte idle read, pipelined
// transactions, half-closes, bytes injected behind STARTTLS, and many
// connections on one pair of pools; every reply must be the connection's
// own, for its own command, once.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// okRcpt accepts recipients so DATA/BDAT can be used.
type okRcptBackend struct{}

func (okRcptBackend) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &okRcptSession{}, nil
}

type okRcptSession struct{ echoSession }

func (s *okRcptSession) Rcpt(to string, _ *smtp.RcptOptions) error { return nil }

// writeSplit writes s in pieces cut at the given offsets, with a pause
// between, so that each piece is its own segment and its own server read.
func writeSplit(c net.Conn, s string, cuts ...int) {
	prev := 0
	for _, k := range cuts {
		if k <= prev || k >= len(s) {
			continue
		}
		io.WriteString(c, s[prev:k])
		time.Sleep(10 * time.Millisecond)
		prev = k
	}
	io.WriteString(c, s[prev:])
}

// rcptLine is "RCPT TO:<addr>\r\n" (or \n) of exactly n bytes.
func rcptLine(n int, tag string, crlf bool) (line, addr string) {
	end := "\r\n"
	if !crlf {
		end = "\n"
	}
	fixed := len("RCPT TO:<") + len(">") + len(end) + len("@x.test") + len(tag)
	addr = tag + strings.Repeat("a", n-fixed) + "@x.test"
	return "RCPT TO:<" + addr + ">" + end, addr
}

// Command lines of lengths around the 128-byte idle read, cut at every
// interesting place (inside the idle array, at its end, between CR and LF),
// with CRLF and bare LF: every one is read whole, once.
func TestServerIdleSplitLines(t *testing.T) {
	_, addr := echoServer(t, echoBackend{}, nil)
	c, br := dialGreeted(t, addr)
	io.WriteString(c, "EHLO x\r\nMAIL FROM:<f@x.test>\r\n")
	if _, err := finalReplies(br, 2); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{40, 126, 127, 128, 129, 256, 2000} {
		for _, crlf := range []bool{true, false} {
			line, a := rcptLine(n, fmt.Sprintf("n%dc%v", n, crlf), crlf)
			if len(line) != n {
				t.Fatalf("line of %d bytes, want %d", len(line), n)
			}
			cutsets := [][]int{nil, {127}, {128}, {129}, {n - 1}, {n - 2}, {1, 128}, {64, 127, 200}}
			for _, cuts := range cutsets {
				writeSplit(c, line, cuts...)
				got, err := finalReplies(br, 1)
				if err != nil {
					t.Fatalf("len %d cuts %v: %v", n, cuts, err)
				}
				if want := "553 5.1.0 rcpt=" + a; got[0] != want {
					t.Fatalf("len %d crlf %v cuts %v: got %q, want %q", n, crlf, cuts, got[0], want)
				}
			}
		}
	}
	// Two lines whose boundary falls at 127/128/129 in one write.
	for _, n := range []int{126, 127, 128, 129} {
		l1, a1 := rcptLine(n, "p1", true)
		l2, a2 := rcptLine(150, "p2", true)
		io.WriteString(c, l1+l2)
		got, err := finalReplies(br, 2)
		if err != nil {
			t.Fatal(err)
		}
		if got[0] != "553 5.1.0 rcpt="+a1 || got[1] != "553 5.1.0 rcpt="+a2 {
			t.Fatalf("pair at %d: %q", n, got)
		}
	}
}

// A whole transaction in one write, bigger than the idle array: DATA body
// and BDAT chunk bytes sit in the idle array and must reach Data intact.
func TestServerIdleWholeTransactionOneWrite(t *testing.T) {
	_, addr := echoServer(t, okRcptBackend{}, nil)
	c, br := dialGreeted(t, addr)
	io.WriteString(c, "EHLO x\r\n")
	finalReplies(br, 1)
	for _, bodyLen := range []int{0, 1, 60, 100, 110, 127, 128, 129, 300, 5000} {
		body := strings.Repeat("b", bodyLen)
		if bodyLen > 4 {
			body = "Subject: x\r\n\r\n" + strings.Repeat("0123456789abcde\r\n", bodyLen/17+1)[:bodyLen-14]
		}
		// DATA: the body as sent (dot stuffing none needed), must end in CRLF.
		msg := body
		if !strings.HasSuffix(msg, "\r\n") {
			msg += "\r\n"
		}
		for _, cuts := range [][]int{nil, {128}, {127}, {129}} {
			from := fmt.Sprintf("d%d@x.test", bodyLen)
			s := "MAIL FROM:<" + from + ">\r\nRCPT TO:<r@x.test>\r\nDATA\r\n" + msg + ".\r\n"
			writeSplit(c, s, cuts...)
			got, err := finalReplies(br, 4)
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("250 2.0.0 from=%s len=%d crc=%08x", from, len(msg), crc32.ChecksumIEEE([]byte(msg)))
			if got[3] != want || !strings.HasPrefix(got[2], "354") {
				t.Fatalf("DATA body %d cuts %v: %q, want last %q", bodyLen, cuts, got, want)
			}
		}
		// BDAT: binary chunk, with CR/LF and "\r\n.\r\n" inside.
		chunk := body + "\r\n.\r\nRSET\r\n" + string([]byte{0, 255, '\n'})
		for _, cuts := range [][]int{nil, {128}, {127}, {129}} {
			from := fmt.Sprintf("b%d@x.test", bodyLen)
			s := "MAIL FROM:<" + from + "> BODY=BINARYMIME\r\nRCPT TO:<r@x.test>\r\n" +
				fmt.Sprintf("BDAT %d\r\n", len(chunk)/2) + chunk[:len(chunk)/2] +
				fmt.Sprintf("BDAT %d LAST\r\n", len(chunk)-len(chunk)/2) + chunk[len(chunk)/2:] + "NOOP\r\n"
			writeSplit(c, s, cuts...)
			got, err := finalReplies(br, 5)
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("250 2.0.0 from=%s len=%d crc=%08x", from, len(chunk), crc32.ChecksumIEEE([]byte(chunk)))
			if got[3] != want || !strings.HasPrefix(got[4], "250 2.0.0 I have") {
				t.Fatalf("BDAT body %d cuts %v: %q, want %q", bodyLen, cuts, got, want)
			}
		}
	}
}

// AUTH PLAIN with its response on a continuation line, pipelined in the same
// write as the command and split across the idle array.
func TestServerIdleAuthContinuation(t *testing.T) {
	_, addr := echoServer(t, echoBackend{}, nil)
	c, br := dialGreeted(t, addr)
	io.WriteString(c, "EHLO x\r\n")
	finalReplies(br, 1)
	for i, pwLen := range []int{1, 80, 100, 120, 200} {
		user := fmt.Sprintf("u%d", i)
		pw := strings.Repeat("p", pwLen)
		resp := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pw))
		for _, cuts := range [][]int{nil, {12}, {128}, {127}} {
			writeSplit(c, "AUTH PLAIN\r\n"+resp+"\r\n", cuts...)
			got, err := finalReplies(br, 2)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(got[0], "334") || got[1] != "535 5.7.8 user="+user+" pass="+pw {
				t.Fatalf("pw %d cuts %v: %q", pwLen, cuts, got)
			}
		}
	}
}

// A client that half-closes right after its commands: they still run and
// are answered, then the connection ends; a partial line before the FIN is
// not run.
func TestServerIdleHalfClose(t *testing.T) {
	_, addr := echoServer(t, echoBackend{}, nil)
	for _, tc := range []struct {
		send string
		want []string
	}{
		{"NOOP\r\n", []string{"250 2.0.0 I have successfully done nothing"}},
		{"EHLO x\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<" + strings.Repeat("z", 150) + "@x.test>\r\n", []string{"250 SIZE", "250 2.0.0 Roger, accepting mail from <a@x.test>", "553 5.1.0 rcpt=" + strings.Repeat("z", 150) + "@x.test"}},
		{"NOOP\r\nNOO", []string{"250 2.0.0 I have successfully done nothing"}},
		{"NOOP\r\nQUIT", []string{"250 2.0.0 I have successfully done nothing"}},
	} {
		c, br := dialGreeted(t, addr)
		io.WriteString(c, tc.send)
		c.CloseWrite()
		rest, err := io.ReadAll(br)
		if err != nil {
			t.Fatalf("%q: %v", tc.send, err)
		}
		var finals []string
		for _, l := range strings.Split(strings.TrimSuffix(string(rest), "\r\n"), "\r\n") {
			if len(l) > 3 && l[3] == ' ' {
				finals = append(finals, l)
			}
		}
		if strings.Join(finals, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%q then FIN: got %q, want %q", tc.send, finals, tc.want)
		}
	}
}

// Bytes pipelined behind STARTTLS, beyond the 128-byte idle array (they
// stay in the kernel): they must never be run, neither in clear text nor
// under TLS.
func TestServerStartTLSInjectionBeyondIdleArray(t *testing.T) {
	cert := selfSigned(t)
	for _, pad := range []int{0, 100, 117, 118, 119, 200, 5000} {
		_, addr := echoServer(t, echoBackend{}, func(s *smtp.Server) {
			s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
			s.ReadTimeout = 5 * time.Second
		})
		c, br := dialGreeted(t, addr)
		io.WriteString(c, "EHLO x\r\n")
		finalReplies(br, 1)
		inj := strings.Repeat("X", pad) + "\r\nMAIL FROM:<inj@x.test>\r\nRCPT TO:<injected@x.test>\r\n"
		io.WriteString(c, "STARTTLS\r\n"+inj)
		got, err := finalReplies(br, 1)
		if err != nil || !strings.HasPrefix(got[0], "220 ") {
			t.Fatalf("pad %d: STARTTLS: %q %v", pad, got, err)
		}
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
		herr := tc.Handshake()
		if herr != nil {
			// The handshake read the injected bytes; whatever follows must
			// not run them.
			c.SetDeadline(time.Now().Add(3 * time.Second))
			rest, _ := io.ReadAll(br)
			if strings.Contains(string(rest), "injected") {
				t.Errorf("pad %d: injected RCPT ran in clear text after a failed handshake: %q", pad, rest)
			}
			t.Logf("pad %d: handshake failed (%v); clear-text after: %q", pad, herr, rest)
			continue
		}
		tbr := bufio.NewReader(tc)
		io.WriteString(tc, "NOOP\r\n")
		l, err := tbr.ReadString('\n')
		if err != nil || !strings.HasPrefix(l, "250 2.0.0 I have") {
			t.Errorf("pad %d: first reply under TLS %q %v", pad, l, err)
		}
	}
}

// 100 connections at once on one server (one pair of pools), each with its
// own addresses and messages, mixing pipelined groups, idle waits, byte
// dribbles, read timeouts, QUIT and abandoned connections: every reply must
// be the connection's own.
func TestServerPoolNoCrossTalk(t *testing.T) {
	cert := selfSigned(t)
	s, addr := echoServer(t, okEchoBackend{}, func(s *smtp.Server) {
		// Also bounds the handshake. 2 s was too short on a loaded machine
		// under -race: a client not scheduled for 2 s met the idle timeout.
		s.ReadTimeout = 6 * time.Second
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	})
	_ = s
	var wg sync.WaitGroup
	errc := make(chan error, 1000)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if err := crossTalkClient(addr, i); err != nil {
				errc <- fmt.Errorf("client %d: %w", i, err)
			}
		}(i)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

func crossTalkClient(addr string, i int) error {
	rnd := rand.New(rand.NewSource(int64(i)))
	var c net.Conn
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	br := bufio.NewReader(c)
	if _, err := finalReplies(br, 1); err != nil {
		return err
	}
	io.WriteString(c, "EHLO x\r\n")
	if _, err := finalReplies(br, 1); err != nil {
		return err
	}
	if i%3 == 0 {
		// STARTTLS, with junk pipelined behind it that must be dropped.
		io.WriteString(c, "STARTTLS\r\n"+strings.Repeat("J", rnd.Intn(100))+"\r\nRSET\r\n")
		if got, err := finalReplies(br, 1); err != nil || !strings.HasPrefix(got[0], "220 ") {
			return fmt.Errorf("STARTTLS: %q %v", got, err)
		}
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("handshake: %v", err)
		}
		c = tc
		br = bufio.NewReader(c)
		io.WriteString(c, "EHLO y\r\n")
		if _, err := finalReplies(br, 1); err != nil {
			return err
		}
	}
	if i%2 == 0 {
		user := fmt.Sprintf("user%03d", i)
		pw := strings.Repeat(fmt.Sprintf("%03d", i), 1+rnd.Intn(60))
		resp := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pw))
		writeSplitQuick(c, "AUTH PLAIN\r\n"+resp+"\r\n", rnd)
		got, err := finalReplies(br, 2)
		if err != nil || got[1] != "535 5.7.8 user="+user+" pass="+pw {
			return fmt.Errorf("AUTH: %q %v", got, err)
		}
	}
	for round := 0; round < 10; round++ {
		tag := fmt.Sprintf("c%03dr%02d", i, round)
		from := tag + "@from.test"
		nr := 1 + rnd.Intn(6)
		var sb strings.Builder
		var want []string
		sb.WriteString("MAIL FROM:<" + from + ">\r\n")
		want = append(want, "250 2.0.0 Roger, accepting mail from <"+from+">")
		for k := 0; k < nr; k++ {
			a := fmt.Sprintf("%s-%d-%s@to.test", tag, k, strings.Repeat("q", rnd.Intn(120)))
			sb.WriteString("RCPT TO:<" + a + ">\r\n")
			want = append(want, "250 2.0.0 I'll make sure <"+a+"> gets this")
		}
		body := fmt.Sprintf("Subject: %s\r\n\r\n%s\r\n", tag, strings.Repeat(tag+" line\r\n", rnd.Intn(400)))
		if rnd.Intn(2) == 0 {
			sb.WriteString("DATA\r\n")
			want = append(want, "354 Go ahead. End your data with <CR><LF>.<CR><LF>")
			sb.WriteString(body + ".\r\n")
		} else {
			sb.WriteString(fmt.Sprintf("BDAT %d LAST\r\n", len(body)) + body)
		}
		want = append(want, fmt.Sprintf("250 2.0.0 from=%s len=%d crc=%08x", from, len(body), crc32.ChecksumIEEE([]byte(body))))
		msg := sb.String()
		switch rnd.Intn(4) {
		case 0: // one write
			io.WriteString(c, msg)
		case 1: // dribble the first 300 bytes
			for j := 0; j < len(msg); j++ {
				if j < 300 && j%7 == 0 {
					time.Sleep(time.Millisecond)
				}
				if j >= 300 {
					io.WriteString(c, msg[j:])
					break
				}
				io.WriteString(c, msg[j:j+1])
			}
		default: // random cuts
			writeSplitQuick(c, msg, rnd)
		}
		got, err := finalReplies(br, len(want))
		if err != nil {
			return err
		}
		for k := range want {
			if got[k] != want[k] {
				return fmt.Errorf("round %d reply %d: got %q, want %q", round, k, got[k], want[k])
			}
		}
		switch rnd.Intn(10) {
		case 0: // idle past the read timeout: 421, end
			time.Sleep(6100 * time.Millisecond)
			got, err := finalReplies(br, 1)
			if err != nil || got[0] != "421 4.4.2 Idle timeout, bye bye" {
				return fmt.Errorf("after the idle timeout: %q %v", got, err)
			}
			return nil
		case 1: // abandon
			return nil
		case 2: // idle shortly
			time.Sleep(time.Duration(rnd.Intn(100)) * time.Millisecond)
		}
	}
	io.WriteString(c, "QUIT\r\n")
	got, err := finalReplies(br, 1)
	if err != nil || got[0] != "221 2.0.0 Bye" {
		return fmt.Errorf("QUIT: %q %v", got, err)
	}
	return nil
}

func writeSplitQuick(c net.Conn, s string, rnd *rand.Rand) {
	for len(s) > 0 {
		k := 1 + rnd.Intn(260)
		if k > len(s) {
			k = len(s)
		}
		io.WriteString(c, s[:k])
		s = s[k:]
		if rnd.Intn(3) == 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

// A shutdown that interrupts many idle waits while other connections are
// mid-transaction on the same pools: each idle one gets exactly the 421, the
// busy ones finish with their own reply.
func TestServerPoolShutdownDuringIdle(t *testing.T) {
	s, addr := echoServer(t, okEchoBackend{}, nil)
	type cl struct {
		c  net.Conn
		br *bufio.Reader
	}
	var idle, busy []cl
	for i := 0; i < 60; i++ {
		c, br := dialGreeted(t, addr)
		io.WriteString(c, fmt.Sprintf("EHLO x\r\nMAIL FROM:<i%d@x.test>\r\n", i))
		if _, err := finalReplies(br, 2); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			io.WriteString(c, "RSET\r\n")
			finalReplies(br, 1)
			idle = append(idle, cl{c, br})
		} else {
			io.WriteString(c, fmt.Sprintf("RCPT TO:<b%d@x.test>\r\nDATA\r\n", i))
			if _, err := finalReplies(br, 2); err != nil {
				t.Fatal(err)
			}
			busy = append(busy, cl{c, br})
		}
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- s.Shutdown(ctx)
	}()
	for _, x := range idle {
		got, err := finalReplies(x.br, 1)
		if err != nil || got[0] != "421 4.3.2 Service shutting down, try again later" {
			t.Errorf("idle: %q %v", got, err)
		}
	}
	for i, x := range busy {
		body := fmt.Sprintf("Subject: busy %d\r\n\r\n%s\r\n", i, strings.Repeat("y", 200+i))
		io.WriteString(x.c, body+".\r\n")
		got, err := finalReplies(x.br, 1)
		want := fmt.Sprintf("250 2.0.0 from=i%d@x.test len=%d crc=%08x", 2*i+1, len(body), crc32.ChecksumIEEE([]byte(body)))
		if err != nil || got[0] != want {
			t.Errorf("busy %d: %q %v, want %q", i, got, err, want)
		}
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}
