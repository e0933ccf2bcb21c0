package ledger

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/internal/testkit"
	"github.com/postern/postern/proxy/proxytest"
)

// Sizes: LEDGER_N messages (FAST in `make test`), LEDGER_SEED the fault
// script's and the client's seed, LEDGER_ARTIFACTS the directory that keeps
// the seed, the logs and the ledger (a temporary one if unset).
const (
	fastN       = 2000
	defaultSeed = 21
	workers     = 16
	// pace spreads the messages over N×pace at least, so the faults
	// meet a load in flight even on a fast machine.
	pace = 30 * time.Millisecond
)

func envInt(t *testing.T, name string, def uint64) uint64 {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// TestLedger is the fault ledger (issue 21, part 3).
func TestLedger(t *testing.T) {
	n := int(envInt(t, "LEDGER_N", fastN))
	seed := envInt(t, "LEDGER_SEED", defaultSeed)
	dir := os.Getenv("LEDGER_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	t.Logf("ledger: N=%d seed=%d (LEDGER_SEED=%d reruns it) artefacts in %s", n, seed, seed, dir)
	writeFile(t, filepath.Join(dir, "seed"), fmt.Sprintf("LEDGER_SEED=%d LEDGER_N=%d\n", seed, n))

	// The timeline: every attempt of the client and every fault.
	timeline, err := os.Create(filepath.Join(dir, "timeline.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer timeline.Close()
	var tlMu sync.Mutex
	tl := &lockedWriter{mu: &tlMu, w: timeline}

	redis := testkit.StartRedis(t)
	t.Cleanup(func() { _ = redis.Proc.Signal(syscall.SIGCONT) }) // a failure during its pause
	opts := proxytest.PostfixOptions{MainCF: []string{
		// Unique across the two instances: a 250's queue id names
		// one copy.
		"enable_long_queue_ids = yes",
	}}
	pfs := []*proxytest.Postfix{proxytest.StartPostfix(t, opts), proxytest.StartPostfix(t, opts)}
	testkit.RequireTool(t, "haproxy") // before the replicas
	rs := startReplicas(t, posternBin, 3, []string{pfs[0].Addr, pfs[1].Addr}, redis.URL())
	var backends []string
	for _, r := range rs {
		backends = append(backends, r.addr)
	}
	h := testkit.StartHAProxy(t, backends, testkit.HAProxyOptions{HealthCheck: true})
	c := &cluster{replicas: rs, redis: redis, postfix: pfs, log: func(s string) { fmt.Fprintln(tl, s) }}
	client := &mailClient{addr: h.Balanced, seed: seed, logw: tl}

	// The load: ids fed at the pace to the workers; the last 5 % wait
	// for the first round of faults, so every fault meets a load.
	ids := make(chan int)
	round1, loadDone := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client.worker(w, ledgerLogins[w%len(ledgerLogins)], ids)
		}()
	}
	go func() {
		tick := time.NewTicker(pace)
		defer tick.Stop()
		for id := 1; id <= n; id++ {
			if id == n-n/20 {
				<-round1
			}
			<-tick.C
			ids <- id
		}
		close(ids)
		wg.Wait()
		close(loadDone)
	}()
	faults := c.runFaults(t, rand.New(rand.NewPCG(seed, 0xfa17)), loadDone, round1)
	<-loadDone
	sending := time.Since(began)

	// Every queued message delivered before the count.
	for i, pf := range pfs {
		waitQueued(t, pf, mailboxName(i), 2*time.Minute)
	}
	ev := evidence{N: n, Attempts: client.Attempts(), Faults: faults,
		PosternLogs: map[string]string{}, Maillogs: map[string]string{}}
	for i, pf := range pfs {
		name := mailboxName(i)
		for _, m := range pf.Messages(t) {
			d := parseCopy(name, m.Path, m.Data, m.Received)
			st, err := os.Stat(m.Path)
			if err != nil {
				t.Fatal(err)
			}
			d.Written = st.ModTime()
			ev.Copies = append(ev.Copies, d)
		}
		ev.Maillogs[name] = pf.Log()
		writeFile(t, filepath.Join(dir, "postfix-"+name+".maillog"), pf.Log())
	}
	for _, r := range rs {
		ev.PosternLogs[r.hostname()] = r.log()
		writeFile(t, filepath.Join(dir, r.name+".log"), r.log())
	}
	res := account(ev)
	var report strings.Builder
	fmt.Fprintf(&report, "seed %d, N %d, %d attempts, sending %v, in all %v\n", seed, n, len(ev.Attempts),
		sending.Round(time.Second), time.Since(began).Round(time.Second))
	for _, f := range faults {
		fmt.Fprintln(&report, f)
	}
	for _, e := range res.Explanations {
		fmt.Fprintln(&report, "explained:", e)
	}
	for _, f := range res.Failures {
		fmt.Fprintln(&report, "FAILURE:", f)
	}
	fmt.Fprintf(&report, "%d explained copies, %d messages delivered without a 250 the client read\n", len(res.Explanations), res.Unacknowledged)
	fmt.Fprintln(&report, res.Line())
	writeFile(t, filepath.Join(dir, "ledger.txt"), report.String())
	t.Log("\n" + report.String())
	t.Logf("artefacts (seed, timeline, replica logs, maillogs, ledger) in %s", dir)
	if len(res.Failures) > 0 || res.Lost > 0 || res.Explained != res.Duplicates {
		t.Errorf("the ledger does not balance (%d failures; LEDGER_SEED=%d reruns it): see above and %s", len(res.Failures), seed, dir)
	}
	// The replicas run under the race detector: a race or a panic the
	// faults provoked fails the ledger too.
	for _, r := range rs {
		for _, bad := range []string{"WARNING: DATA RACE", "panic:", "fatal error:"} {
			if strings.Contains(ev.PosternLogs[r.hostname()], bad) {
				t.Errorf("%s logged %q: see %s", r.name, bad, filepath.Join(dir, r.name+".log"))
			}
		}
	}
	if len(faults) < len(faultKinds) {
		t.Errorf("%d faults injected, want every kind at least once", len(faults))
	}
	fmt.Println(res.Line())
}

// lockedWriter serialises the timeline's writers.
type lockedWriter struct {
	mu *sync.Mutex
	w  *os.File
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// waitQueued waits until pf has delivered every message it queued. A file
// left in incoming/ is a receipt a stop cut short (its cleanup was
// killed): never queued, never acknowledged, never delivered.
func waitQueued(t *testing.T, pf *proxytest.Postfix, name string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var queued []string
		for _, f := range pf.QueueFiles(t) {
			if !strings.HasPrefix(f, "incoming/") {
				queued = append(queued, f)
			}
		}
		if len(queued) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Postfix %s has not delivered its queue after %v: %v", name, timeout, queued)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
