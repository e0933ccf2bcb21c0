package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// loadConfig is one run of the load generator (see the flags in main.go).
type loadConfig struct {
	Addr, Mode      string // Mode: starttls | tls | plain
	User, Password  string // empty User: no AUTH
	From, To        string
	Concurrency     int
	Connections     int // total connections
	MessagesPerConn int
	Size            int // bytes per message, headers included
	Duration        time.Duration
	Pipelining      bool   // --pipelining: the same as Shape "pipelining"
	Shape           string // --shape (shapes.go); empty: "waiting", or "pipelining" with Pipelining
	Insecure        bool
	ServerName      string
	TLSResume       bool          // share a TLS session cache between connections
	TLSGroups       []tls.CurveID // --tls-groups: key exchange groups offered (nil: Go's default)
	Timeout         time.Duration // connect / one reply
	Idle            int           // W4: hold this many sessions open after AUTH
	Hold            time.Duration // ... for this long
	RSSPID          int           // sample this process's memory (Linux /proc)
	CPUPIDs         []int         // sample the CPU time of these process trees (Linux /proc)
	Label, Workload string
	// Logins (W5, --logins): connection i logs in as Logins[i mod len], so
	// a run of len(Logins) connections logs each one in once.
	Logins []login
	hooks  *testHooks
}

// login is one AUTH PLAIN credential of --logins.
type login struct{ user, password string }

type testHooks struct {
	afterSetup func() // called once per established session
}

// client is one SMTP session of the generator, already past connect, TLS and AUTH.
type client interface {
	// tlsGroup is the key exchange group the handshake negotiated; false
	// without TLS.
	tlsGroup() (tls.CurveID, bool)
	send(msg []byte) error
	quit() error
	close()
}

func (c *loadConfig) validate() error {
	switch c.Mode {
	case "starttls", "tls", "plain":
	default:
		return fmt.Errorf("--mode must be starttls, tls or plain, not %q", c.Mode)
	}
	switch {
	case c.Addr == "":
		return errors.New("--addr is required")
	case c.Concurrency < 1:
		return errors.New("--concurrency must be at least 1")
	case c.Idle == 0 && c.Connections < 1:
		return errors.New("--connections must be at least 1")
	case c.Idle == 0 && c.MessagesPerConn < 0:
		return errors.New("--messages-per-conn must not be negative")
	case c.Size < 256:
		return errors.New("--size must be at least 256 bytes")
	case c.Duration <= 0:
		return errors.New("--duration must be positive")
	case c.From == "" || c.To == "":
		return errors.New("--from and --to are required")
	}
	switch {
	case c.Shape == "" && c.Pipelining:
		c.Shape = shapePipelining
	case c.Shape == "":
		c.Shape = shapeWaiting
	case c.Pipelining && c.Shape != shapePipelining:
		return fmt.Errorf("--pipelining contradicts --shape %s", c.Shape)
	}
	if err := checkShape(c.Shape); err != nil {
		return err
	}
	c.Pipelining = c.Shape == shapePipelining
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.Hold <= 0 {
		c.Hold = 10 * time.Second
	}
	return nil
}

func (c *loadConfig) tlsConfig() *tls.Config {
	name := c.ServerName
	if name == "" {
		name, _, _ = strings.Cut(c.Addr, ":")
	}
	tc := &tls.Config{ServerName: name, InsecureSkipVerify: c.Insecure, MinVersion: tls.VersionTLS12}
	if len(c.TLSGroups) > 0 {
		// The client offers (and sends key shares for) only these groups,
		// so every peer answers with the same key exchange (W2x).
		tc.CurvePreferences = slices.Clone(c.TLSGroups)
	}
	if c.TLSResume {
		tc.ClientSessionCache = tls.NewLRUClientSessionCache(1024)
	}
	return tc
}

// dial opens one session: connect, (STARTTLS|TLS), EHLO, AUTH PLAIN.
func (c *loadConfig) dial(ctx context.Context, tc *tls.Config) (client, error) {
	if c.Shape == shapeWaiting {
		return dialGoSMTP(ctx, c, tc)
	}
	return dialRaw(ctx, c, tc)
}

// runLoad runs the configured workload and returns its summary. Every loop
// is bounded: no new connection or message starts after --duration, and every
// connection is closed by force --duration + --timeout after the start.
func runLoad(ctx context.Context, cfg loadConfig) (Summary, error) {
	if err := cfg.validate(); err != nil {
		return Summary{}, err
	}
	var base memInfo
	if cfg.RSSPID > 0 {
		m, err := readMem(cfg.RSSPID)
		if err != nil {
			return Summary{}, err
		}
		base = m
	}
	cpu := cpuSampler{proc: "/proc", roots: cfg.CPUPIDs}
	var cpuBefore float64
	if len(cfg.CPUPIDs) > 0 {
		v, err := cpu.sample()
		if err != nil {
			return Summary{}, err
		}
		cpuBefore = v
	}
	msg := buildMessage(cfg.From, cfg.To, cfg.Size)
	tc := cfg.tlsConfig()
	rec := &recorder{}

	start := time.Now()
	softEnd := start.Add(cfg.Duration)
	hardCtx, cancel := context.WithDeadline(ctx, softEnd.Add(cfg.Timeout))
	defer cancel()

	var s Summary
	if cfg.Idle > 0 {
		s = runIdle(hardCtx, &cfg, tc, rec, base, start, softEnd)
	} else {
		runConnections(hardCtx, &cfg, tc, msg, rec, softEnd)
		s = rec.summarize(time.Since(start))
		s.CapReached = time.Now().After(softEnd)
		if cfg.RSSPID > 0 {
			if m, err := readMem(cfg.RSSPID); err == nil {
				s.RSSBaseKiB, s.RSSPeakKiB, s.HWMKiB = base.RSS, m.RSS, m.HWM
				s.HWMGrowKiB = m.HWM - base.RSS
			}
		}
	}
	if len(cfg.CPUPIDs) > 0 {
		if v, err := cpu.sample(); err == nil {
			s.CPUms = v - cpuBefore
			if s.Messages > 0 {
				s.CPUmsPerMsg = s.CPUms / float64(s.Messages)
			}
		}
	}
	s.Label, s.Workload, s.Mode, s.Pipelining, s.Shape = cfg.Label, cfg.Workload, cfg.Mode, cfg.Pipelining, cfg.Shape
	s.Concurrency, s.Size = cfg.Concurrency, cfg.Size
	s.TLSOffered = groupNames(cfg.TLSGroups)
	return s, nil
}

func runConnections(ctx context.Context, cfg *loadConfig, tc *tls.Config, msg []byte, rec *recorder, softEnd time.Time) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < cfg.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(cfg.Connections) || !time.Now().Before(softEnd) || ctx.Err() != nil {
					return
				}
				conn := cfg
				if len(cfg.Logins) > 0 {
					l := cfg.Logins[(i-1)%int64(len(cfg.Logins))]
					copied := *cfg
					copied.User, copied.Password = l.user, l.password
					conn = &copied
				}
				oneConnection(ctx, conn, tc, msg, rec, softEnd)
			}
		}()
	}
	wg.Wait()
}

func oneConnection(ctx context.Context, cfg *loadConfig, tc *tls.Config, msg []byte, rec *recorder, softEnd time.Time) {
	t0 := time.Now()
	c, err := cfg.dial(ctx, tc)
	if err != nil {
		rec.errs.add(fmt.Errorf("set-up: %w", err))
		return
	}
	defer c.close()
	rec.setup(time.Since(t0), c)
	if cfg.hooks != nil && cfg.hooks.afterSetup != nil {
		cfg.hooks.afterSetup()
	}
	for i := 0; i < cfg.MessagesPerConn && time.Now().Before(softEnd); i++ {
		t := time.Now()
		if err := c.send(msg); err != nil {
			rec.errs.add(fmt.Errorf("message: %w", err))
			if !isReply(err) {
				return // the connection is gone
			}
			continue
		}
		rec.message(time.Since(t), len(msg))
	}
	if err := c.quit(); err != nil {
		rec.errs.add(fmt.Errorf("quit: %w", err))
		return
	}
	rec.connDone()
}

// runIdle is W4: open cfg.Idle sessions (cfg.Concurrency at a time), hold them
// all after AUTH for cfg.Hold, sample the target's memory, then QUIT them.
func runIdle(ctx context.Context, cfg *loadConfig, tc *tls.Config, rec *recorder, base memInfo, start, softEnd time.Time) Summary {
	release := make(chan struct{})
	var held atomic.Int64
	var setupWG, doneWG sync.WaitGroup
	sem := make(chan struct{}, cfg.Concurrency)
	for i := 0; i < cfg.Idle; i++ {
		if time.Now().After(softEnd) || ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		setupWG.Add(1)
		doneWG.Add(1)
		go func() {
			defer doneWG.Done()
			t0 := time.Now()
			c, err := cfg.dial(ctx, tc)
			<-sem
			if err != nil {
				rec.errs.add(fmt.Errorf("set-up: %w", err))
				setupWG.Done()
				return
			}
			defer c.close()
			rec.setup(time.Since(t0), c)
			held.Add(1)
			setupWG.Done()
			select {
			case <-release:
			case <-ctx.Done():
				return
			}
			if err := c.quit(); err != nil {
				rec.errs.add(fmt.Errorf("quit: %w", err))
				return
			}
			rec.connDone()
		}()
	}
	setupWG.Wait()
	setupDone := time.Since(start)
	var peak memInfo
	holdEnd := time.Now().Add(cfg.Hold)
	for time.Now().Before(holdEnd) && ctx.Err() == nil {
		if cfg.RSSPID > 0 {
			if m, err := readMem(cfg.RSSPID); err == nil && m.RSS > peak.RSS {
				peak = m
			}
		}
		time.Sleep(min(250*time.Millisecond, time.Until(holdEnd)+time.Millisecond))
	}
	close(release)
	doneWG.Wait()
	s := rec.summarize(setupDone) // rates: sessions set up per second
	s.IdleHeld = int(held.Load())
	if cfg.RSSPID > 0 && peak.RSS > 0 {
		s.RSSBaseKiB, s.RSSPeakKiB = base.RSS, peak.RSS
		if m, err := readMem(cfg.RSSPID); err == nil {
			s.HWMKiB = m.HWM
			s.HWMGrowKiB = m.HWM - base.RSS
		}
		if s.IdleHeld > 0 {
			s.KiBPerIdle = float64(peak.RSS-base.RSS) / float64(s.IdleHeld)
		}
	}
	return s
}

// buildMessage makes a message of size bytes (without the final ".\r\n";
// one more when the arithmetic leaves a single byte): headers, then lines of
// 76 characters, none starting with a dot.
func buildMessage(from, to string, size int) []byte {
	head := fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: postern-bench\r\n"+
		"Message-ID: <bench@postern-bench.invalid>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n", from, to)
	b := make([]byte, 0, max(size, len(head))+3)
	b = append(b, head...)
	const text = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-postern-bench"
	line := text[:76] + "\r\n"
	for len(b)+len(line) <= size {
		b = append(b, line...)
	}
	if rest := size - len(b); rest > 0 {
		b = append(b, strings.Repeat("x", max(rest-2, 1))+"\r\n"...)
	}
	return b
}
