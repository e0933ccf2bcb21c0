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

	"github.com/postern/postern/internal/testkit"
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

// BenchmarkStateRedisVsMemory sends 4 KiB messages through two postern
// binaries in the same run, one with --state memory and one with --state
// redis:// (a real redis-server), 10 connections at a time, in two shapes:
// W1 (one AUTH per connection, its share of b.N messages on it) and W2 (one
// connection and one AUTH per message, where the lockout's Redis calls
// count most: Blocked, Reserve, LoginDelay, Release, Success are one round
// trip each). Compare ms/msg between the sub-benchmarks:
//
//	go test ./cmd/postern -run '^$' -bench StateRedisVsMemory -benchtime 500x
func BenchmarkStateRedisVsMemory(b *testing.B) {
	redis := testkit.StartRedis(b)
	pf := proxytest.StartPostfix(b, proxytest.PostfixOptions{})
	instances := map[string]*postern{
		"memory": startPostern(b, pf.Addr, "--state", "memory"),
		"redis":  startPostern(b, pf.Addr, "--state", redis.URL()),
	}
	body := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789\r\n"), 4096/76)
	msg := append([]byte("Subject: bench\r\n\r\n"), body...)
	dial := func(addr string) (*smtp.Client, error) {
		c, err := smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return nil, err
		}
		return c, c.Auth(sasl.NewPlainClient("", aliceLogin, alicePass))
	}
	send := func(c *smtp.Client) error {
		return c.SendMail(aliceLogin, []string{"bench@example.test"}, bytes.NewReader(msg))
	}
	// W1: each of 10 connections sends n messages after one AUTH.
	w1 := func(addr string, n int) error {
		c, err := dial(addr)
		if err != nil {
			return err
		}
		defer c.Quit()
		for range n {
			if err := send(c); err != nil {
				return err
			}
		}
		return nil
	}
	// W2: a connection and an AUTH per message.
	w2 := func(addr string, n int) error {
		for range n {
			c, err := dial(addr)
			if err != nil {
				return err
			}
			err = send(c)
			c.Quit()
			if err != nil {
				return err
			}
		}
		return nil
	}
	// CPU time is what the comparison rests on: on a shared machine the
	// wall-clock rates move with the neighbours' load.
	cpuPIDs := func(p *postern) []int {
		if p == instances["redis"] {
			return []int{p.proc.Cmd.Process.Pid, redis.Proc.Cmd.Process.Pid}
		}
		return []int{p.proc.Cmd.Process.Pid}
	}
	run := func(b *testing.B, p *postern, work func(string, int) error) {
		addr := p.StartTLS
		cpuBefore := cpuTime(b, p.proc.Cmd.Process.Pid)
		var redisBefore time.Duration
		if pids := cpuPIDs(p); len(pids) == 2 {
			redisBefore = cpuTime(b, pids[1])
		}
		const conns = 10
		var wg sync.WaitGroup
		errs := make(chan error, conns)
		b.ResetTimer()
		start := time.Now()
		for c := range conns {
			n := b.N / conns
			if c < b.N%conns {
				n++
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := work(addr, n); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		elapsed := time.Since(start)
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
		b.ReportMetric(float64(elapsed.Milliseconds())*conns/float64(b.N), "ms/msg/conn")
		b.ReportMetric(float64((cpuTime(b, p.proc.Cmd.Process.Pid)-cpuBefore).Microseconds())/float64(b.N), "postern-cpu-µs/msg")
		if pids := cpuPIDs(p); len(pids) == 2 {
			b.ReportMetric(float64((cpuTime(b, pids[1])-redisBefore).Microseconds())/float64(b.N), "redis-cpu-µs/msg")
		}
	}
	for _, w := range []struct {
		name string
		work func(string, int) error
	}{{"W1", w1}, {"W2", w2}} {
		for _, st := range []string{"memory", "redis"} {
			b.Run(w.name+"-"+st, func(b *testing.B) { run(b, instances[st], w.work) })
		}
	}
}

// cpuTime reads a process's user+system CPU time from /proc (clock ticks of
// 10 ms: run enough messages).
func cpuTime(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The command name (field 2) may hold spaces; the fields after its ")"
	// start at field 3, so utime and stime (14, 15) are [11] and [12].
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %v %v", pid, err1, err2)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
