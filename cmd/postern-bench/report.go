package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"html"
	"io"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"
)

// The reference peer of every ratio, and the display order of peers.
const reference = "postern"

var peerOrder = []string{"postern", "postern-before", "postern-nocache", "postfix", "nginx", "nginx-fastauth", "haraka", "sink", "sink-starttls"}

// The ceilings are bounds, not competitors: the plain sink (no TLS) and the
// STARTTLS-terminating sink, the fair ceiling of a TLS proxy (W3's target).
const ceiling, tlsCeiling = "sink", "sink-starttls"

func isCeiling(p string) bool { return p == ceiling || p == tlsCeiling }

// passwordCheck says how each peer checks the benchmark user's password:
// which rows rest on a credential cache (one bcrypt, then memory).
var passwordCheck = map[string]string{
	"postern":         "**cache**: bcrypt once, then memory",
	"postern-before":  "**cache**: bcrypt once, then memory",
	"postern-nocache": "bcrypt every AUTH",
	"postfix":         "bcrypt every AUTH (Dovecot)",
	"nginx":           "bcrypt every AUTH (auth_http)",
	"nginx-fastauth":  "**memory**: auth_http bcrypt once, then memory",
	"haraka":          "clear text, no hash",
	"sink":            "none (any AUTH)",
	"sink-starttls":   "none (any AUTH)",
}

type cell struct {
	runs []Summary
}

// median of one metric over the runs (the mean of the two middle values for
// an even count).
func (c cell) median(f func(Summary) float64) float64 {
	v := make([]float64, 0, len(c.runs))
	for _, s := range c.runs {
		v = append(v, f(s))
	}
	return medianOf(v)
}

func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	sort.Float64s(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func (c cell) errors() int {
	n := 0
	for _, s := range c.runs {
		n += s.Errors
	}
	return n
}

// results: resultKey (the workload, and the client shape unless it is the
// default) -> peer -> runs.
type results map[string]map[string]*cell

// resultKey files a run under its workload, with the client shape after it
// when the shape is not the default: "W1", "W1 pipelining".
func resultKey(s Summary) string {
	shape := s.Shape
	if shape == "" && s.Pipelining { // lines written before --shape
		shape = shapePipelining
	}
	if shape == "" || shape == shapeWaiting {
		return s.Workload
	}
	return s.Workload + " " + shape
}

// splitKey is resultKey's workload and shape.
func splitKey(key string) (workload, shape string) {
	wl, shape, ok := strings.Cut(key, " ")
	if !ok {
		return key, shapeWaiting
	}
	return wl, shape
}

// messageKeys are the message workloads present in r, each followed by its
// other client shapes, in report order.
func (r results) messageKeys() []string {
	var keys []string
	for _, wl := range messageWorkloads {
		for _, sh := range shapes {
			key := wl
			if sh.name != shapeWaiting {
				key += " " + sh.name
			}
			if r[key] != nil {
				keys = append(keys, key)
			}
		}
	}
	return keys
}

func readResults(r io.Reader) (results, error) {
	res := results{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var s Summary
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			return nil, fmt.Errorf("results: %w", err)
		}
		if s.Workload == "" || s.Label == "" {
			continue
		}
		key := resultKey(s)
		if res[key] == nil {
			res[key] = map[string]*cell{}
		}
		if res[key][s.Label] == nil {
			res[key][s.Label] = &cell{}
		}
		res[key][s.Label].runs = append(res[key][s.Label].runs, s)
	}
	return res, sc.Err()
}

func (r results) peers(workload string) []string {
	var out []string
	for _, p := range peerOrder {
		if r[workload][p] != nil {
			out = append(out, p)
		}
	}
	var extra []string
	for p := range r[workload] {
		if !slices.Contains(peerOrder, p) {
			extra = append(extra, p)
		}
	}
	sort.Strings(extra)
	return append(out, extra...)
}

func ratio(v, ref float64) string {
	if ref == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", v/ref)
}

func msgRate(s Summary) float64 { return s.MsgPerSec }
func p50(s Summary) float64     { return s.MsgP50 }
func p99(s Summary) float64     { return s.MsgP99 }
func setup50(s Summary) float64 { return s.SetupP50 }
func setup99(s Summary) float64 { return s.SetupP99 }
func mibRate(s Summary) float64 { return s.MiBPerSec }
func cpuMsg(s Summary) float64  { return s.CPUmsPerMsg }

// cpuCell is the median CPU ms per message, or "–" when not sampled.
func cpuCell(c *cell) string {
	if c.median(cpuMsg) == 0 {
		return "–"
	}
	return fmt.Sprintf("%.3f", c.median(cpuMsg))
}

// fastest returns the competitor (not Postern, not the ceiling) with the
// highest median messages/s.
func (r results) fastest(workload string) (string, *cell) {
	var best string
	var bc *cell
	for _, p := range r.peers(workload) {
		if strings.HasPrefix(p, reference) || isCeiling(p) {
			continue
		}
		c := r[workload][p]
		if bc == nil || c.median(msgRate) > bc.median(msgRate) {
			best, bc = p, c
		}
	}
	return best, bc
}

func writeReport(w io.Writer, r results, preamble, notes string, now time.Time) {
	fmt.Fprintf(w, "# Postern side-by-side benchmark — results\n\n")
	fmt.Fprintf(w, "Generated by `bench/run.sh` (`postern-bench report`) on %s.\n\n", now.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "Machine: %s.\n\n", machine())
	if preamble != "" {
		fmt.Fprintf(w, "%s\n\n", strings.TrimSpace(preamble))
	}
	fmt.Fprintf(w, "Every figure is the median of the runs shown (`runs`); ratios are the peer's median divided by Postern's, measured in the same run of the script (so > 1 means faster than Postern for messages/s and MiB/s). Errors are summed over the runs.\n\n")
	fmt.Fprintf(w, "![messages per second, W1, W2 and W2x](chart.svg)\n\n")

	for _, key := range r.messageKeys() {
		writeMessageSection(w, r, key)
	}

	if r["W3"] != nil {
		fmt.Fprintf(w, "## W3 large messages\n\n%s\n\n", describe(r["W3"]))
		fmt.Fprintf(w, "| peer | runs | MiB/s | ratio to Postern | msg p50 ms | peak RSS growth (VmHWM − RSS at start) | CPU ms/msg | errors |\n")
		fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|\n")
		ref := r["W3"][reference]
		for _, p := range r.peers("W3") {
			c := r["W3"][p]
			refRate := 0.0
			if ref != nil {
				refRate = ref.median(mibRate)
			}
			grow := "–"
			if c.runs[0].HWMKiB > 0 {
				grow = fmt.Sprintf("%.1f MiB", c.median(func(s Summary) float64 { return float64(s.HWMGrowKiB) })/1024)
			}
			fmt.Fprintf(w, "| %s | %d | %.1f | %s | %.0f | %s | %s | %d |\n", p, len(c.runs), c.median(mibRate),
				ratio(c.median(mibRate), refRate), c.median(p50), grow, cpuCell(c), c.errors())
		}
		fmt.Fprintln(w)
		if ref != nil {
			if ref.runs[0].HWMKiB > 0 {
				g := ref.median(func(s Summary) float64 { return float64(s.HWMGrowKiB) }) / 1024
				fmt.Fprintf(w, "- Target peak RSS growth < 16 MiB: %.1f MiB — %s.\n", g, verdict(g < 16, fmt.Sprintf("missed by %.1f MiB", g-16)))
			}
			for _, sink := range []string{tlsCeiling, ceiling} {
				if s := r["W3"][sink]; s != nil {
					got := ref.median(mibRate) / s.median(mibRate)
					fmt.Fprintf(w, "- Target throughput ≥ 0.8× the STARTTLS-terminating sink: %.2f× %s — %s.\n", got, sink, verdict(got >= 0.8, fmt.Sprintf("missed by %.0f%%", (0.8-got)/0.8*100)))
					break
				}
			}
		}
		printErrors(w, r["W3"], r.peers("W3"))
		fmt.Fprintln(w)
	}

	if r["W4"] != nil {
		fmt.Fprintf(w, "## W4 idle authenticated TLS sessions\n\n")
		fmt.Fprintf(w, "| peer | runs | sessions held | RSS at start | RSS while held | KiB per session | set-up p50 ms | set-up p99 ms | errors |\n")
		fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, p := range r.peers("W4") {
			c := r["W4"][p]
			fmt.Fprintf(w, "| %s | %d | %.0f | %.1f MiB | %.1f MiB | %.1f | %.1f | %.1f | %d |\n", p, len(c.runs),
				c.median(func(s Summary) float64 { return float64(s.IdleHeld) }),
				c.median(func(s Summary) float64 { return float64(s.RSSBaseKiB) })/1024,
				c.median(func(s Summary) float64 { return float64(s.RSSPeakKiB) })/1024,
				c.median(func(s Summary) float64 { return s.KiBPerIdle }),
				c.median(setup50), c.median(setup99), c.errors())
		}
		fmt.Fprintln(w)
		if ref := r["W4"][reference]; ref != nil {
			k := ref.median(func(s Summary) float64 { return s.KiBPerIdle })
			fmt.Fprintf(w, "- Target < 32 KiB per idle authenticated TLS session: %.1f KiB — %s.\n", k, verdict(k < 32, fmt.Sprintf("missed by %.1f KiB", k-32)))
		}
		printErrors(w, r["W4"], r.peers("W4"))
		fmt.Fprintln(w)
	}
	if r["W5"] != nil {
		writeStorm(w, r["W5"])
	}
	if notes != "" {
		fmt.Fprintf(w, "%s\n", strings.TrimSpace(notes))
	}
}

// cachedRows names the rows whose AUTH is answered from memory.
func cachedRows(peers []string) string {
	var out []string
	for _, p := range peers {
		if strings.Contains(passwordCheck[p], "memory") {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ") + " (every other row pays bcrypt cost 10 per AUTH, or none at all)"
}

// Labels of W5's two Postern configurations (bench/storm.sh).
const (
	stormUnbounded = "auth-concurrency=0"
	stormBounded   = "auth-concurrency=default"
)

// writeStorm is W5: the login storm with and without the bound on
// concurrent hash verifications, both against a cold cache.
func writeStorm(w io.Writer, peers map[string]*cell) {
	fmt.Fprintf(w, "## W5 login storm: distinct users, cache cold\n\n")
	if c := peers[stormBounded]; c != nil {
		s := c.runs[0]
		fmt.Fprintf(w, "%d distinct users (bcrypt cost 10), each logging in once (connect, EHLO, STARTTLS, EHLO, AUTH PLAIN → 235, QUIT), %d at a time, against a fresh Postern per run (credential cache cold): `--auth-concurrency 0` (no bound) and the default (GOMAXPROCS verifications at once, the rest queue). Set-up time is connect → 235. Run by `bench/run.sh` through `bench/storm.sh`.\n\n", s.Connections, s.Concurrency)
	}
	fmt.Fprintf(w, "| Postern | runs | logins/s | set-up p50 ms | set-up p99 ms | set-up max ms | errors |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|\n")
	order := []string{stormUnbounded, stormBounded}
	for p := range peers {
		if !slices.Contains(order, p) {
			order = append(order, p)
		}
	}
	var present []string
	for _, p := range order {
		c := peers[p]
		if c == nil {
			continue
		}
		present = append(present, p)
		fmt.Fprintf(w, "| %s | %d | %.1f | %.0f | %.0f | %.0f | %d |\n", p, len(c.runs),
			c.median(func(s Summary) float64 { return s.ConnPerSec }), c.median(setup50), c.median(setup99),
			c.median(func(s Summary) float64 { return s.SetupMax }), c.errors())
	}
	fmt.Fprintln(w)
	off, on := peers[stormUnbounded], peers[stormBounded]
	if off != nil && on != nil {
		a, b := off.median(setup99), on.median(setup99)
		fmt.Fprintf(w, "- Target p99 set-up with the bound ≤ without: %.0f ms vs %.0f ms (%.2f×) — %s.\n", b, a, a/max(b, 0.001), verdict(b <= a, fmt.Sprintf("%.0f%% higher", (b/a-1)*100)))
		done := func(c *cell) int {
			n := 0
			for _, s := range c.runs {
				n += s.Connections
			}
			return n
		}
		fmt.Fprintf(w, "- No session starves: %d logins completed with the bound, %d errors — %s.\n", done(on), on.errors(), verdict(on.errors() == 0, fmt.Sprintf("%d errors", on.errors())))
	}
	printErrors(w, peers, present)
	fmt.Fprintln(w)
}

func verdict(ok bool, miss string) string {
	if ok {
		return "**met**"
	}
	return "**missed** (" + miss + ")"
}

func describe(peers map[string]*cell) string {
	c := peers[reference]
	if c == nil {
		for _, any := range peers {
			c = any
			break
		}
	}
	if c != nil {
		s := c.runs[0]
		per := 0
		if s.Connections > 0 {
			per = (s.Messages + s.Connections - 1) / s.Connections
		}
		groups := "Go's default key exchange groups (X25519MLKEM768 first)"
		if s.TLSOffered != "" {
			groups = "key exchange groups " + s.TLSOffered + " only (`--tls-groups`)"
		}
		_, shape := splitKey(resultKey(s))
		return fmt.Sprintf("Concurrency %d, %d B messages, ~%d per connection, %d messages per run, client mode %s for the proxies, plain for the sink; client shape `%s`: %s; the client offers %s.",
			s.Concurrency, s.Size, per, s.Messages, s.Mode, shape, shapeDesc(shape), groups)
	}
	return ""
}

func printErrors(w io.Writer, peers map[string]*cell, order []string) {
	for _, p := range order {
		seen := map[string]bool{}
		var texts []string
		for _, s := range peers[p].runs {
			for _, t := range s.ErrorTexts {
				if !seen[t] && len(texts) < 3 {
					seen[t] = true
					texts = append(texts, t)
				}
			}
		}
		if len(texts) > 0 {
			fmt.Fprintf(w, "- %s errors, e.g.: `%s`\n", p, strings.Join(texts, "`; `"))
		}
	}
}

// machine describes the host from /proc (Linux); best effort.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "MemTotal:") {
				var kb int64
				fmt.Sscan(strings.TrimSpace(strings.TrimPrefix(l, "MemTotal:")), &kb)
				mem = fmt.Sprintf(", %.1f GiB RAM", float64(kb)/(1<<20))
			}
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%s, %d CPUs%s%s, %s", cpu, runtime.NumCPU(), mem, kernel, runtime.Version())
}

var peerColor = map[string]string{
	"postern": "#1f77b4", "postern-nocache": "#6baed6", "postfix": "#ff7f0e",
	"nginx": "#2ca02c", "haraka": "#d62728", "sink": "#7f7f7f",
	"postern-before": "#aec7e8", "nginx-fastauth": "#98df8a", "sink-starttls": "#c7c7c7",
}

// writeChart draws W1, W2 and W2x messages/s (medians) as horizontal bars.
func writeChart(w io.Writer, r results) {
	const width, left, right, barH, gap, titleH = 760, 150, 90, 22, 6, 34
	type section struct {
		title string
		peers []string
		vals  []float64
	}
	var secs []section
	for _, key := range r.messageKeys() {
		wl, shape := splitKey(key)
		s := section{title: chartTitle[wl]}
		if shape != shapeWaiting {
			s.title += ", client shape " + shape
		}
		for _, p := range r.peers(key) {
			s.peers = append(s.peers, p)
			s.vals = append(s.vals, r[key][p].median(msgRate))
		}
		secs = append(secs, s)
	}
	height := 20
	for _, s := range secs {
		height += titleH + len(s.peers)*(barH+gap) + 12
	}
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="13">`+"\n", width, height, width, height)
	fmt.Fprintf(w, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	y := 20
	for _, s := range secs {
		fmt.Fprintf(w, `<text x="10" y="%d" font-weight="bold" font-size="15">%s</text>`+"\n", y+16, html.EscapeString(s.title))
		y += titleH
		maxV := 0.0
		for _, v := range s.vals {
			maxV = max(maxV, v)
		}
		for i, p := range s.peers {
			bw := 0.0
			if maxV > 0 {
				bw = s.vals[i] / maxV * float64(width-left-right)
			}
			color := peerColor[p]
			if color == "" {
				color = "#9467bd"
			}
			fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-8, y+barH-6, html.EscapeString(p))
			fmt.Fprintf(w, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", left, y, bw, barH, color)
			fmt.Fprintf(w, `<text x="%.1f" y="%d">%.1f</text>`+"\n", float64(left)+bw+6, y+barH-6, s.vals[i])
			y += barH + gap
		}
		y += 12
	}
	fmt.Fprintln(w, "</svg>")
}

func runReportCmd(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("postern-bench report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "", "JSON lines written by the load generator (with --label and --workload)")
	out := fs.String("out", "RESULTS.md", "markdown output")
	svg := fs.String("svg", "chart.svg", "SVG chart output (W1/W2/W2x messages/s)")
	preamble := fs.String("preamble", "", "markdown `FILE` inserted after the header (versions, settings)")
	notes := fs.String("notes", "", "markdown `FILE` appended at the end (analysis)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := readResults(f)
	if err != nil {
		return err
	}
	readOpt := func(path string) (string, error) {
		if path == "" {
			return "", nil
		}
		b, err := os.ReadFile(path)
		return string(b), err
	}
	pre, err := readOpt(*preamble)
	if err != nil {
		return err
	}
	nt, err := readOpt(*notes)
	if err != nil {
		return err
	}
	var md strings.Builder
	writeReport(&md, r, pre, nt, time.Now())
	if err := os.WriteFile(*out, []byte(md.String()), 0o644); err != nil {
		return err
	}
	var sv strings.Builder
	writeChart(&sv, r)
	return os.WriteFile(*svg, []byte(sv.String()), 0o644)
}
