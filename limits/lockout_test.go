package limits

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/testkit"
	"github.com/postern/postern/limits/state"
)

func newTestLockout(cfg LockoutConfig) (*Lockout, *testkit.Clock) {
	clock := testkit.NewClock(time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC))
	cfg.Now = clock.Now
	return NewLockout(cfg), clock
}

func TestLockoutBlocksAddressAfterMaxFailures(t *testing.T) {
	var logBuf bytes.Buffer
	l, clock := newTestLockout(LockoutConfig{Log: slog.New(slog.NewTextHandler(&logBuf, nil))})
	attacker := netip.MustParseAddr("127.0.0.1")
	other := netip.MustParseAddr("127.0.0.9")

	for i := 1; i <= 9; i++ {
		l.Failure(attacker, "alice")
		clock.Advance(time.Second)
	}
	if l.Blocked(attacker) {
		t.Fatal("blocked after 9 failures; the default limit is 10")
	}
	l.Failure(attacker, "alice")
	l.Failure(attacker, "alice") // the 11th
	if !l.Blocked(attacker) {
		t.Fatal("not blocked after 11 failures")
	}
	if l.Blocked(other) {
		t.Fatal("another address is blocked too")
	}
	if got := strings.Count(logBuf.String(), "auth lockout: address blocked"); got != 1 {
		t.Errorf("lockout log lines = %d, want exactly 1:\n%s", got, logBuf.String())
	}
	if !strings.Contains(logBuf.String(), "client=127.0.0.1") {
		t.Errorf("lockout log line lacks client=127.0.0.1:\n%s", logBuf.String())
	}

	// The owner, from an address with no failures, is not locked out.
	l.Success(other, "alice")
	if l.Blocked(other) {
		t.Fatal("owner's address blocked after success")
	}

	// Success does not reset the address counter (an attacker with one valid
	// account must not clear its own record).
	l.Success(attacker, "mallory")
	if !l.Blocked(attacker) {
		t.Fatal("a success from the blocked address unblocked it")
	}

	// The window slides: 15 minutes after the first failures they expire.
	clock.Advance(15*time.Minute - 9*time.Second)
	if !l.Blocked(attacker) {
		t.Fatal("unblocked while the 10 newest failures are still inside the window")
	}
	clock.Advance(15 * time.Second)
	if l.Blocked(attacker) {
		t.Fatal("still blocked after the window passed")
	}
}

func TestLockoutSlidingWindowCountsOnlyRecent(t *testing.T) {
	l, clock := newTestLockout(LockoutConfig{MaxFailures: 3, Window: time.Minute})
	ip := netip.MustParseAddr("192.0.2.1")
	l.Failure(ip, "x")
	l.Failure(ip, "x")
	clock.Advance(61 * time.Second)
	l.Failure(ip, "x") // the first two are out of the window
	if l.Blocked(ip) {
		t.Fatal("failures older than the window were counted")
	}
	l.Failure(ip, "x")
	l.Failure(ip, "x")
	if !l.Blocked(ip) {
		t.Fatal("3 failures within the window did not block")
	}
}

func TestLockoutIPv6CountsPer64(t *testing.T) {
	l, _ := newTestLockout(LockoutConfig{MaxFailures: 3})
	for _, a := range []string{"2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff:ffff:ffff:ffff"} {
		l.Failure(netip.MustParseAddr(a), "x")
	}
	if !l.Blocked(netip.MustParseAddr("2001:db8:1:2::99")) {
		t.Error("failures from one /64 were not counted together")
	}
	if l.Blocked(netip.MustParseAddr("2001:db8:1:3::1")) {
		t.Error("neighbouring /64 blocked")
	}
	if l.Blocked(netip.MustParseAddr("fe80::1%eth0")) {
		t.Error("link-local blocked")
	}

	// IPv4 is per address, also when it arrives IPv4-mapped.
	for range 3 {
		l.Failure(netip.MustParseAddr("::ffff:198.51.100.7"), "x")
	}
	if !l.Blocked(netip.MustParseAddr("198.51.100.7")) {
		t.Error("IPv4-mapped failures not counted for the IPv4 address")
	}
	if l.Blocked(netip.MustParseAddr("198.51.100.8")) {
		t.Error("IPv4 neighbour blocked")
	}
}

func TestLockoutLoginDelayGrowsAndCaps(t *testing.T) {
	l, clock := newTestLockout(LockoutConfig{})
	if d := l.LoginDelay("alice"); d != 0 {
		t.Fatalf("delay without failures = %v, want 0", d)
	}
	want := []time.Duration{
		250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second,
		4 * time.Second, 8 * time.Second, 15 * time.Second, 15 * time.Second,
	}
	for i, w := range want {
		// Every failure from a different address: the per-login count is
		// what grows, and no address gets blocked.
		ip := netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)})
		l.Failure(ip, "alice")
		if got := l.LoginDelay("alice"); got != w {
			t.Errorf("after %d failures: delay %v, want %v", i+1, got, w)
		}
		if l.Blocked(ip) {
			t.Errorf("address %v blocked after one failure", ip)
		}
	}
	for range 20 {
		l.Failure(netip.MustParseAddr("10.0.1.1"), "ALICE") // case does not give fresh counters
	}
	if got := l.LoginDelay("alice"); got != 15*time.Second {
		t.Errorf("delay after many failures = %v, want the 15s cap", got)
	}
	if got := l.LoginDelay("bob"); got != 0 {
		t.Errorf("bob's delay = %v, want 0", got)
	}

	// The owner logging in clears the delay.
	l.Success(netip.MustParseAddr("127.0.0.9"), "alice")
	if got := l.LoginDelay("alice"); got != 0 {
		t.Errorf("delay after success = %v, want 0", got)
	}

	// And failures age out with the window.
	l.Failure(netip.MustParseAddr("10.0.2.1"), "carol")
	clock.Advance(16 * time.Minute)
	if got := l.LoginDelay("carol"); got != 0 {
		t.Errorf("delay after the window = %v, want 0", got)
	}
}

// TestLockoutMemoryBound floods the lockout with a million distinct addresses
// and logins: the tables never grow past MaxKeys, and the heap stays flat.
func TestLockoutMemoryBound(t *testing.T) {
	const maxKeys = 10_000
	const flood = 1_000_000
	l, _ := newTestLockout(LockoutConfig{MaxKeys: maxKeys})

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	var b [4]byte
	for i := range flood {
		binary.BigEndian.PutUint32(b[:], uint32(i)+0x0b000000) // 11.0.0.0 upwards
		l.Failure(netip.AddrFrom4(b), string(b[:]))
		if i%100_000 == 0 {
			if a, n := l.Len(); a > maxKeys || n > maxKeys {
				t.Fatalf("after %d keys: %d addresses, %d logins tracked; bound is %d", i, a, n, maxKeys)
			}
		}
	}
	a, n := l.Len()
	if a != maxKeys || n != maxKeys {
		t.Errorf("tracked %d addresses, %d logins; want exactly %d each", a, n, maxKeys)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(l) // measure with the tables still live
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d distinct addresses with MaxKeys=%d: heap grew %.1f MiB (%.0f bytes per tracked key pair)",
		flood, maxKeys, float64(growth)/(1<<20), float64(growth)/maxKeys)
	// 10k keys in each table need a few MiB; a table that grew with the
	// flood would need hundreds.
	if growth > 32<<20 {
		t.Errorf("heap grew %d bytes for %d keys; memory is not bounded", growth, maxKeys)
	}
}

// TestLockoutReserveCountsParallelAttempts: attempts are counted when they
// start, so of 100 simultaneous attempts from one address only MaxFailures
// may be verified; a success gives its attempt back, a failure keeps it.
func TestLockoutReserveCountsParallelAttempts(t *testing.T) {
	var logBuf bytes.Buffer
	l, _ := newTestLockout(LockoutConfig{Log: slog.New(slog.NewTextHandler(&logBuf, nil))})
	ip := netip.MustParseAddr("192.0.2.7")
	var granted sync.WaitGroup
	var mu sync.Mutex
	n := 0
	for range 100 {
		granted.Add(1)
		go func() {
			defer granted.Done()
			if l.Reserve(ip) {
				mu.Lock()
				n++
				mu.Unlock()
			}
		}()
	}
	granted.Wait()
	if n != 10 {
		t.Fatalf("%d of 100 parallel attempts reserved, want 10", n)
	}
	if !l.Blocked(ip) {
		t.Fatal("not blocked with 10 attempts in flight")
	}
	// Three were right: given back, three more may be tried.
	for range 3 {
		l.Release(ip)
	}
	for i := range 4 {
		if got, want := l.Reserve(ip), i < 3; got != want {
			t.Fatalf("reserve %d after 3 releases = %v, want %v", i+1, got, want)
		}
	}
	// The 10 in flight turn out wrong: the address stays blocked, and
	// ReservedFailure does not count the address a second time.
	for range 10 {
		l.ReservedFailure(ip, "x")
	}
	if !l.Blocked(ip) {
		t.Fatal("not blocked after 10 reserved failures")
	}
	if got := strings.Count(logBuf.String(), "auth lockout: address blocked"); got != 1 {
		t.Errorf("lockout log lines = %d, want 1", got)
	}
	other := netip.MustParseAddr("192.0.2.8")
	for range 9 {
		if !l.Reserve(other) {
			t.Fatal("other address refused")
		}
		l.ReservedFailure(other, "y")
	}
	if l.Blocked(other) {
		t.Fatal("9 reserved failures blocked; ReservedFailure counted the address twice")
	}
}

// TestLockoutSharedAcrossReplicas: three lockouts (three replicas) on one
// Redis: 10 failures spread over them block the address on all three, with
// one log line between them, and parallel reservations over the replicas
// still stop at MaxFailures.
func TestLockoutSharedAcrossReplicas(t *testing.T) {
	srv := testkit.StartRedis(t)
	var logBuf syncLogBuffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	var replicas [3]*Lockout
	for i := range replicas {
		r, err := state.NewRedis(state.RedisConfig{URL: srv.URL(), Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		replicas[i] = NewLockout(LockoutConfig{Store: r, Log: log})
	}
	attacker := netip.MustParseAddr("192.0.2.66")
	for i := range 10 {
		l := replicas[i%3]
		if l.Blocked(attacker) {
			t.Fatalf("blocked after %d failures", i)
		}
		if !l.Reserve(attacker) {
			t.Fatalf("reservation %d refused", i+1)
		}
		l.ReservedFailure(attacker, "alice")
	}
	for i, l := range replicas {
		if !l.Blocked(attacker) {
			t.Errorf("replica %d: not blocked after 10 failures spread over 3 replicas", i)
		}
		if l.Reserve(attacker) {
			t.Errorf("replica %d: an 11th attempt was reserved", i)
		}
		if d := l.LoginDelay("ALICE"); d != 15*time.Second {
			t.Errorf("replica %d: login delay %v after 10 failures, want the 15s cap", i, d)
		}
	}
	if got := strings.Count(logBuf.String(), "auth lockout: address blocked"); got != 1 {
		t.Errorf("lockout log lines over 3 replicas = %d, want 1:\n%s", got, logBuf.String())
	}
	replicas[1].Success(netip.MustParseAddr("192.0.2.1"), "alice")
	if d := replicas[2].LoginDelay("alice"); d != 0 {
		t.Errorf("login delay on another replica after a success = %v, want 0", d)
	}

	// 100 parallel attempts from a fresh address over 3 replicas: 10 get in.
	ip := netip.MustParseAddr("192.0.2.77")
	var wg sync.WaitGroup
	var mu sync.Mutex
	n := 0
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if replicas[i%3].Reserve(ip) {
				mu.Lock()
				n++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if n != 10 {
		t.Fatalf("%d of 100 parallel attempts over 3 replicas reserved, want 10", n)
	}
}

// syncLogBuffer is a log destination for several goroutines.
type syncLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncLogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncLogBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLockoutUnavailableBudget: attempts that no backend could check are
// given back as failures but counted toward MaxUnavailable; with that many
// in the window the address is Blocked and Reserve refuses, one log line
// says so (not the "address blocked" line fail2ban reads), and the block
// ends with the window. Wrong passwords keep their own, smaller budget.
func TestLockoutUnavailableBudget(t *testing.T) {
	var logBuf bytes.Buffer
	l, clock := newTestLockout(LockoutConfig{MaxFailures: 3, MaxUnavailable: 5, Window: time.Minute,
		Log: slog.New(slog.NewTextHandler(&logBuf, nil))})
	office := netip.MustParseAddr("192.0.2.7")
	other := netip.MustParseAddr("192.0.2.8")
	for i := 1; i <= 5; i++ {
		if !l.Reserve(office) {
			t.Fatalf("attempt %d refused; the unavailable budget is 5", i)
		}
		l.ReservedUnavailable(office)
		if blocked := l.Blocked(office); blocked != (i == 5) {
			t.Fatalf("after %d unavailable attempts Blocked = %v", i, blocked)
		}
		clock.Advance(time.Second)
	}
	if l.Reserve(office) {
		t.Fatal("Reserve accepted an attempt after the unavailable budget was spent")
	}
	if l.Blocked(other) {
		t.Fatal("another address is blocked too")
	}
	// More unavailable attempts (a replica that reserved before the
	// block) log no second line.
	l.ReservedUnavailable(office)
	if got := strings.Count(logBuf.String(), "auth lockout: address blocked after attempts while a backend was unavailable"); got != 1 {
		t.Errorf("%d log lines for the spent budget, want 1:\n%s", got, logBuf.String())
	}
	if strings.Contains(logBuf.String(), `msg="auth lockout: address blocked"`) {
		t.Errorf("the unavailable budget logged fail2ban's line:\n%s", logBuf.String())
	}
	clock.Advance(time.Minute + time.Second)
	if l.Blocked(office) {
		t.Fatal("still blocked after the window")
	}
	// The unavailable attempts were given back: all 3 failures are left.
	for i := 1; i <= 3; i++ {
		if !l.Reserve(office) {
			t.Fatalf("failure %d refused: an unavailable attempt was kept as a failure", i)
		}
		l.ReservedFailure(office, "alice")
	}
	if !l.Blocked(office) || l.Reserve(office) {
		t.Fatal("not blocked after 3 failures")
	}
}
