package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// messageWorkloads are the workloads reported in messages/s, in report order.
// W2x is W2 with the client offering only X25519 (bench/run.sh passes
// --tls-groups x25519 to every peer): see w2xWhy.
var messageWorkloads = []string{"W1", "W2", "W2x"}

var sectionTitle = map[string]string{
	"W1":  "W1 steady: several 4 KiB messages per connection",
	"W2":  "W2 handshake-heavy: one message per connection (TLS + AUTH each time)",
	"W2x": "W2x handshake-heavy, every peer on X25519: W2 with the client offering only X25519",
}

var chartTitle = map[string]string{
	"W1":  "W1 steady (messages/s, median)",
	"W2":  "W2 one message per connection (messages/s, median)",
	"W2x": "W2x one message per connection, all peers X25519 (messages/s, median)",
}

// targetLabel names the workload in its target lines where the plain
// "Target" would hide what is being compared.
var targetLabel = map[string]string{"W2x": "W2x (all peers X25519) "}

// w2xWhy is the one sentence that says why W2x exists.
const w2xWhy = "Why W2x: nginx 1.22 is linked with Debian 12's OpenSSL 3.0, which has no ML-KEM, so it negotiates X25519 whatever the client offers, while Postern (Go) accepts the client's default X25519MLKEM768 hybrid key share and so alone pays for post-quantum key exchange in W2; W2x has the client offer only X25519 (`--tls-groups x25519`), so every peer does the same key exchange and the ratio measures the proxies alone (Postern keeps ML-KEM on for real clients)."

// target is Postern against the fastest competitor of one workload.
type target struct {
	peer     string  // the fastest competitor
	ratio    float64 // Postern's messages/s over the peer's
	pc, bc   float64 // CPU ms/msg: Postern's, the peer's (0: not sampled)
	pp, bp   float64 // message p99 ms: Postern's, the peer's
	ref, bst *cell
}

func (r results) target(wl string) (target, bool) {
	ref := r[wl][reference]
	name, best := r.fastest(wl)
	if ref == nil || best == nil {
		return target{}, false
	}
	return target{
		peer: name, ratio: ref.median(msgRate) / best.median(msgRate),
		pc: ref.median(cpuMsg), bc: best.median(cpuMsg),
		pp: ref.median(p99), bp: best.median(p99),
		ref: ref, bst: best,
	}, true
}

func (t target) rateVerdict() string {
	return verdict(t.ratio >= 1.2, fmt.Sprintf("missed by %.0f%%", (1.2-t.ratio)/1.2*100))
}

func (t target) cpuVerdict() string {
	return verdict(t.pc <= t.bc, fmt.Sprintf("%.0f%% more", (t.pc/t.bc-1)*100))
}

// writeMessageSection is the table and target lines of W1, W2 or W2x under
// one client shape (key: resultKey).
func writeMessageSection(w io.Writer, r results, key string) {
	base, shape := splitKey(key)
	wl := key
	label := targetLabel[base]
	if shape == shapeWaiting {
		fmt.Fprintf(w, "## %s\n\n", sectionTitle[base])
	} else {
		fmt.Fprintf(w, "## %s — client shape %s\n\n", sectionTitle[base], shape)
		if label = strings.TrimSpace(label); label == "" {
			label = base
		}
		label += " (" + shape + " client) "
	}
	fmt.Fprintf(w, "%s\n\n", describe(r[wl]))
	fmt.Fprintf(w, "| peer | password check | runs | messages/s | ratio to Postern | msg p50 ms | msg p99 ms | set-up p50 ms | set-up p99 ms | CPU ms/msg | errors | key exchange |\n")
	fmt.Fprintf(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	ref := r[wl][reference]
	refRate := 0.0
	if ref != nil {
		refRate = ref.median(msgRate)
	}
	for _, p := range r.peers(wl) {
		c := r[wl][p]
		fmt.Fprintf(w, "| %s | %s | %d | %.1f | %s | %.1f | %.1f | %.1f | %.1f | %s | %d | %s |\n", p, passwordCheck[p], len(c.runs),
			c.median(msgRate), ratio(c.median(msgRate), refRate), c.median(p50), c.median(p99),
			c.median(setup50), c.median(setup99), cpuCell(c), c.errors(), keyExchange(c))
	}
	fmt.Fprintln(w)
	if t, ok := r.target(wl); ok {
		fmt.Fprintf(w, "- Target %smessages/s ≥ 1.2× the fastest peer (%s): Postern is %.2f× — %s.\n", label, t.peer, t.ratio, t.rateVerdict())
		if t.pc > 0 && t.bc > 0 {
			fmt.Fprintf(w, "- Target %sCPU per message ≤ the fastest peer's: %.3f ms vs %.3f ms — %s.\n", label, t.pc, t.bc, t.cpuVerdict())
		}
		fmt.Fprintf(w, "- Target %sp99 per-message latency ≤ the fastest peer's: %.1f ms vs %.1f ms — %s.\n", label, t.pp, t.bp, verdict(t.pp <= t.bp, fmt.Sprintf("%.1f× higher", t.pp/max(t.bp, 0.001))))
		if before := r[wl]["postern-before"]; before != nil {
			fmt.Fprintf(w, "- Before → after (postern-before → postern, same run): %.1f → %.1f messages/s (%.2f×), CPU %s → %s ms/msg, p99 %.1f → %.1f ms.\n",
				before.median(msgRate), ref.median(msgRate), ref.median(msgRate)/max(before.median(msgRate), 0.001),
				cpuCell(before), cpuCell(ref), before.median(p99), ref.median(p99))
		}
	}
	if line := keyExchangeLine(r, wl); line != "" {
		fmt.Fprintf(w, "- %s\n", line)
	}
	fmt.Fprintf(w, "- Rows that rest on a credential cache: %s.\n", cachedRows(r.peers(wl)))
	printErrors(w, r[wl], r.peers(wl))
	fmt.Fprintln(w)
	if wl == "W2x" {
		writeW2Pair(w, r)
	}
}

// keyExchange is the key exchange group a peer negotiated over its runs
// (the client's record of the TLS handshake): "no TLS" for plain rows, "–"
// when not recorded.
func keyExchange(c *cell) string {
	var seen []string
	plain := true
	for _, s := range c.runs {
		plain = plain && s.Mode == "plain"
		if s.TLSGroup != "" && !slices.Contains(seen, s.TLSGroup) {
			seen = append(seen, s.TLSGroup)
		}
	}
	switch {
	case len(seen) > 0:
		return strings.Join(seen, "; ")
	case plain && len(c.runs) > 0:
		return "no TLS"
	}
	return "–"
}

// keyExchangeLine says whether every TLS row of wl did the same key
// exchange, and what the client offered; "" when no row recorded it.
func keyExchangeLine(r results, wl string) string {
	var rows, groups []string
	offered := ""
	for _, p := range r.peers(wl) {
		c := r[wl][p]
		g := keyExchange(c)
		if g == "–" || g == "no TLS" {
			continue
		}
		if o := c.runs[0].TLSOffered; o != "" {
			offered = o
		}
		rows = append(rows, p+" "+g)
		if !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	if len(rows) == 0 {
		return ""
	}
	if offered == "" {
		offered = "Go's default, X25519MLKEM768 first"
	}
	if len(groups) == 1 {
		return fmt.Sprintf("Key exchange: every TLS row negotiated %s (the client offered: %s).", groups[0], offered)
	}
	line := fmt.Sprintf("Key exchange differs between rows (the client offered: %s): %s.", offered, strings.Join(rows, ", "))
	if wl == "W2" && r["W2x"] != nil {
		line += " W2x below runs the same workload with every peer on X25519."
	}
	return line
}

// writeW2Pair puts W2's and W2x's targets side by side: the same workload,
// only the client's key exchange offer differs.
func writeW2Pair(w io.Writer, r results) {
	w2, ok2 := r.target("W2")
	w2x, okx := r.target("W2x")
	if !okx {
		return
	}
	fmt.Fprintf(w, "%s\n\n", w2xWhy)
	fmt.Fprintf(w, "| target (Postern vs the fastest competitor) | W2 (client: Go's default groups) | W2x (all peers X25519) |\n")
	fmt.Fprintf(w, "|---|---|---|\n")
	w2cell := func(f func(target) string) string {
		if !ok2 {
			return "not measured"
		}
		return f(w2)
	}
	rate := func(t target) string {
		return fmt.Sprintf("%.2f× %s — %s", t.ratio, t.peer, t.rateVerdict())
	}
	cpu := func(t target) string {
		if t.pc == 0 || t.bc == 0 {
			return "not sampled"
		}
		return fmt.Sprintf("%.3f vs %.3f ms — %s", t.pc, t.bc, t.cpuVerdict())
	}
	kex := func(t target) string {
		return fmt.Sprintf("postern %s, %s %s", keyExchange(t.ref), t.peer, keyExchange(t.bst))
	}
	fmt.Fprintf(w, "| messages/s ≥ 1.2× | %s | %s |\n", w2cell(rate), rate(w2x))
	fmt.Fprintf(w, "| CPU ms/msg ≤ | %s | %s |\n", w2cell(cpu), cpu(w2x))
	fmt.Fprintf(w, "| key exchange negotiated | %s | %s |\n", w2cell(kex), kex(w2x))
	fmt.Fprintln(w)
}
