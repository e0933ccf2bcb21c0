package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postern/postern/proxy/proxytest"
)

// BenchmarkForwardToPostfix sends 4 KiB messages to a private Postfix
// directly (the peer, plain SMTP from mynetworks) and through the built
// postern binary (STARTTLS + AUTH), in the same run, 10 connections at a
// time, each connection sending its share of b.N messages. Compare the
// msgs/s of the two sub-benchmarks:
//
//	go test ./cmd/postern -run '^$' -bench ForwardToPostfix -benchtime 1000x
func BenchmarkForwardToPostfix(b *testing.B) {
	pf := proxytest.StartPostfix(b, proxytest.PostfixOptions{})
	p := startPostern(b, pf.Addr)
	body := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789\r\n"), 4096/76)
	msg := append([]byte("Subject: bench\r\n\r\n"), body...)
	run := func(b *testing.B, dial func() (*smtp.Client, error)) {
		const conns = 10
		var wg sync.WaitGroup
		errs := make(chan error, conns)
		start := time.Now()
		for c := 0; c < conns; c++ {
			n := b.N / conns
			if c < b.N%conns {
				n++
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				cl, err := dial()
				if err != nil {
					errs <- err
					return
				}
				defer cl.Quit()
				for i := 0; i < n; i++ {
					if err := cl.SendMail(aliceLogin, []string{"bench@example.test"}, bytes.NewReader(msg)); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	}
	b.Run("postfix-direct", func(b *testing.B) {
		run(b, func() (*smtp.Client, error) { return smtp.Dial(pf.Addr) })
	})
	b.Run("via-postern", func(b *testing.B) {
		run(b, func() (*smtp.Client, error) {
			c, err := smtp.DialStartTLS(p.StartTLS, &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				return nil, err
			}
			return c, c.Auth(sasl.NewPlainClient("", aliceLogin, alicePass))
		})
	})
}

// BenchmarkPeakRSS50MiB forwards 50 MiB messages through the postern binary
// to Postfix and reports how much the process's peak RSS (VmHWM) grew:
//
//	go test ./cmd/postern -run '^$' -bench PeakRSS50MiB -benchtime 3x
func BenchmarkPeakRSS50MiB(b *testing.B) {
	pf := proxytest.StartPostfix(b, proxytest.PostfixOptions{})
	p := startPostern(b, pf.Addr, "--max-message-size", "60000000")
	msg := bigBody(50 << 20)
	c := dialAuth(b, p.StartTLS, aliceLogin, alicePass)
	defer c.Close()
	// One small message first, so set-up allocations are not counted.
	if err := c.SendMail(aliceLogin, []string{"rss@example.test"}, strings.NewReader("Subject: warm-up\r\n\r\nx\r\n")); err != nil {
		b.Fatal(err)
	}
	before := vmHWM(b, p.proc.Cmd.Process.Pid)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := c.SendMail(aliceLogin, []string{"rss@example.test"}, bytes.NewReader(msg)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(msg))/(1<<20)/time.Since(start).Seconds(), "MiB/s")
	b.ReportMetric(float64(vmHWM(b, p.proc.Cmd.Process.Pid)-before)/1024, "peak-RSS-growth-MiB")
}

// vmHWM reads a process's peak resident set size in KiB.
func vmHWM(b *testing.B, pid int) int {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			n, err := strconv.Atoi(f[1])
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no VmHWM")
	return 0
}
