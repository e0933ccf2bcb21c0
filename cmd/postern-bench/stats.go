package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value such that at least p% of the
// values are less than or equal to it. Zero for an empty slice.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if p <= 0 {
		return sorted[0]
	}
	rank := int(p/100*float64(n) + 0.999999999) // ceil without float noise at exact ranks
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	return sorted[rank-1]
}

// errorLog counts errors and keeps the first few distinct texts.
type errorLog struct {
	mu       sync.Mutex
	count    int
	distinct []string
	max      int
}

func (e *errorLog) add(err error) {
	if err == nil {
		return
	}
	text := err.Error()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.count++
	if e.max == 0 {
		e.max = 5
	}
	if len(e.distinct) < e.max && !slices.Contains(e.distinct, text) {
		e.distinct = append(e.distinct, text)
	}
}

// recorder collects the raw measurements of one run; safe for concurrent use.
type recorder struct {
	mu          sync.Mutex
	msgLat      []time.Duration     // one per accepted message: MAIL sent .. reply after the final dot
	setupLat    []time.Duration     // one per established connection: connect .. AUTH accepted
	groups      map[tls.CurveID]int // negotiated key exchange group -> connections (TLS only)
	connections int                 // completed (QUIT answered or idle hold ended)
	messages    int                 // accepted (250 after the dot)
	bytes       int64               // message bytes accepted
	errs        errorLog
}

// setup records one established session: its set-up time and, with TLS,
// the key exchange group its handshake negotiated.
func (r *recorder) setup(d time.Duration, c client) {
	id, isTLS := c.tlsGroup()
	r.mu.Lock()
	r.setupLat = append(r.setupLat, d)
	if isTLS {
		if r.groups == nil {
			r.groups = map[tls.CurveID]int{}
		}
		r.groups[id]++
	}
	r.mu.Unlock()
}

func (r *recorder) message(d time.Duration, size int) {
	r.mu.Lock()
	r.msgLat = append(r.msgLat, d)
	r.messages++
	r.bytes += int64(size)
	r.mu.Unlock()
}

func (r *recorder) connDone() {
	r.mu.Lock()
	r.connections++
	r.mu.Unlock()
}

// Summary is the result of one run; it is printed as one JSON line.
type Summary struct {
	Label       string  `json:"label,omitempty"`    // free text from --label, e.g. the peer
	Workload    string  `json:"workload,omitempty"` // from --workload, e.g. W1
	Mode        string  `json:"mode"`
	Pipelining  bool    `json:"pipelining"`
	Shape       string  `json:"shape,omitempty"` // --shape; empty in lines written before it existed: "waiting", or "pipelining" with Pipelining
	Concurrency int     `json:"concurrency"`
	Size        int     `json:"size"`
	Elapsed     float64 `json:"elapsed_s"`

	Messages    int     `json:"messages"`
	Connections int     `json:"connections"`
	MsgPerSec   float64 `json:"messages_per_s"`
	ConnPerSec  float64 `json:"connections_per_s"`
	MiBPerSec   float64 `json:"mib_per_s"`

	MsgP50   float64 `json:"msg_p50_ms"`
	MsgP90   float64 `json:"msg_p90_ms"`
	MsgP99   float64 `json:"msg_p99_ms"`
	SetupP50 float64 `json:"setup_p50_ms"`
	SetupP99 float64 `json:"setup_p99_ms"`
	SetupMax float64 `json:"setup_max_ms"`

	// TLSOffered is --tls-groups (empty: Go's default, which offers
	// X25519MLKEM768); TLSGroup the group the peer negotiated, e.g.
	// "X25519MLKEM768", or every group with its count when connections
	// differed; empty without TLS.
	TLSOffered string `json:"tls_groups_offered,omitempty"`
	TLSGroup   string `json:"tls_group,omitempty"`

	Errors     int      `json:"errors"`
	ErrorTexts []string `json:"error_texts,omitempty"`
	CapReached bool     `json:"duration_cap_reached,omitempty"`
	IdleHeld   int      `json:"idle_sessions_held,omitempty"`
	RSSBaseKiB int64    `json:"rss_base_kib,omitempty"`   // target's VmRSS before the run (--rss-pid)
	RSSPeakKiB int64    `json:"rss_kib,omitempty"`        // target's VmRSS at the end / while idle sessions are held
	HWMKiB     int64    `json:"hwm_kib,omitempty"`        // target's VmHWM (peak RSS) after the run
	KiBPerIdle float64  `json:"kib_per_idle,omitempty"`   // (rss - base) / idle sessions held
	HWMGrowKiB int64    `json:"hwm_growth_kib,omitempty"` // hwm - base
	// CPU time of the --cpu-pids process trees over the run (user+system,
	// reaped children included), and per accepted message.
	CPUms       float64 `json:"cpu_ms,omitempty"`
	CPUmsPerMsg float64 `json:"cpu_ms_per_msg,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// summarize turns the raw measurements into a Summary.
func (r *recorder) summarize(elapsed time.Duration) Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	msg := slices.Clone(r.msgLat)
	setup := slices.Clone(r.setupLat)
	sort.Slice(msg, func(i, j int) bool { return msg[i] < msg[j] })
	sort.Slice(setup, func(i, j int) bool { return setup[i] < setup[j] })
	s := Summary{
		Elapsed:     elapsed.Seconds(),
		Messages:    r.messages,
		Connections: r.connections,
		MsgP50:      ms(percentile(msg, 50)),
		MsgP90:      ms(percentile(msg, 90)),
		MsgP99:      ms(percentile(msg, 99)),
		SetupP50:    ms(percentile(setup, 50)),
		SetupP99:    ms(percentile(setup, 99)),
		SetupMax:    ms(percentile(setup, 100)),
		Errors:      r.errs.count,
		ErrorTexts:  slices.Clone(r.errs.distinct),
	}
	if len(r.groups) > 0 {
		s.TLSGroup = describeGroups(r.groups)
	}
	if secs := elapsed.Seconds(); secs > 0 {
		s.MsgPerSec = float64(r.messages) / secs
		s.ConnPerSec = float64(r.connections) / secs
		s.MiBPerSec = float64(r.bytes) / (1 << 20) / secs
	}
	return s
}

// writeHuman prints the summary for people, then the JSON line for scripts.
func (s Summary) write(w io.Writer) error {
	var b strings.Builder
	name := s.Label
	if s.Workload != "" {
		name = strings.TrimSpace(s.Workload + " " + name)
	}
	if name != "" {
		fmt.Fprintf(&b, "== %s\n", name)
	}
	fmt.Fprintf(&b, "mode %s, shape %s, concurrency %d, size %d B, %.2fs%s\n",
		s.Mode, s.Shape, s.Concurrency, s.Size, s.Elapsed, map[bool]string{true: " (duration cap reached)"}[s.CapReached])
	if s.IdleHeld > 0 || s.Messages == 0 && s.KiBPerIdle > 0 {
		fmt.Fprintf(&b, "idle sessions held %d", s.IdleHeld)
		if s.KiBPerIdle > 0 {
			fmt.Fprintf(&b, ", target RSS %d KiB -> %d KiB: %.1f KiB per session", s.RSSBaseKiB, s.RSSPeakKiB, s.KiBPerIdle)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "messages %d (%.1f/s, %.1f MiB/s), connections %d (%.1f/s)\n",
		s.Messages, s.MsgPerSec, s.MiBPerSec, s.Connections, s.ConnPerSec)
	fmt.Fprintf(&b, "message latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms; set-up p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
		s.MsgP50, s.MsgP90, s.MsgP99, s.SetupP50, s.SetupP99, s.SetupMax)
	if s.HWMKiB > 0 {
		fmt.Fprintf(&b, "target peak RSS (VmHWM) %d KiB, growth %d KiB over %d KiB at start\n", s.HWMKiB, s.HWMGrowKiB, s.RSSBaseKiB)
	}
	if s.TLSGroup != "" {
		offered := s.TLSOffered
		if offered == "" {
			offered = "Go's default"
		}
		fmt.Fprintf(&b, "TLS key exchange %s (offered: %s)\n", s.TLSGroup, offered)
	}
	if s.CPUms > 0 {
		fmt.Fprintf(&b, "target CPU %.0f ms, %.3f ms per message\n", s.CPUms, s.CPUmsPerMsg)
	}
	fmt.Fprintf(&b, "errors %d", s.Errors)
	for _, t := range s.ErrorTexts {
		fmt.Fprintf(&b, "\n  %s", t)
	}
	b.WriteString("\n")
	j, err := json.Marshal(s)
	if err != nil {
		return err
	}
	b.Write(j)
	b.WriteString("\n")
	_, err = io.WriteString(w, b.String())
	return err
}

func (s Summary) writeJSON(w io.Writer) error {
	j, err := json.Marshal(s)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", j)
	return err
}
