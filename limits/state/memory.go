package state

import (
	"context"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// MemoryConfig tunes a Memory store. Zero values take the defaults.
type MemoryConfig struct {
	// MaxKeys bounds the counter and Once keys kept; the least recently
	// used are forgotten first. Default DefaultMemoryMaxKeys.
	MaxKeys int
	// Now is the clock; tests inject a fake one. Default time.Now.
	Now func() time.Time
}

// Memory is a Store in this process's memory. Its footprint is bounded: an
// LRU of at most MaxKeys keys, each holding a fixed ring of as many event
// times as its limit at most (so a counter never holds more than its limit;
// it grows only as far as events are held at once), and
// suspensions, which only logins that authenticated can earn. A flood of
// distinct keys evicts the least recently used counters, which can forget
// one early; that is the price of the bound. Safe for concurrent use.
type Memory struct {
	now func() time.Time

	mu          sync.Mutex // guards the entries inside the cache and suspensions
	keys        *lru.Cache[string, *entry]
	suspensions map[string]Suspension // by LoginKey
}

// entry is one key's state: a counter's ring, or a Once deadline.
type entry struct {
	times     []int64 // Unix nanoseconds of the newest events; 0 = empty slot
	onceUntil int64   // Unix nanoseconds until which Once answers false
}

// NewMemory returns an empty Memory store.
func NewMemory(cfg MemoryConfig) *Memory {
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = DefaultMemoryMaxKeys
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	// lru.New fails only for a size ≤ 0, ruled out above.
	keys, _ := lru.New[string, *entry](cfg.MaxKeys)
	return &Memory{now: cfg.Now, keys: keys, suspensions: map[string]Suspension{}}
}

// ring returns key's entry with a ring of at least size slots, creating it.
// Called with m.mu held.
func (m *Memory) ring(key string, size int) *entry {
	e, ok := m.keys.Get(key)
	if !ok {
		e = &entry{}
		m.keys.Add(key, e)
	}
	if len(e.times) < size {
		grown := make([]int64, size)
		copy(grown, e.times)
		e.times = grown
	}
	return e
}

// Add implements Store.
func (m *Memory) Add(_ context.Context, key string, limit int, window time.Duration) (int, bool, error) {
	if limit <= 0 {
		return 0, false, errLimit(limit)
	}
	now := m.now().UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.ring(key, 0)
	n := e.count(now, window)
	if n >= limit {
		return n, false, nil
	}
	e.add(now, limit)
	return n + 1, true, nil
}

// Record implements Store.
func (m *Memory) Record(_ context.Context, key string, limit int, window time.Duration) (int, error) {
	if limit <= 0 {
		return 0, errLimit(limit)
	}
	now := m.now().UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.ring(key, 0)
	e.add(now, limit)
	return e.count(now, window), nil
}

// RemoveNewest implements Store.
func (m *Memory) RemoveNewest(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.keys.Peek(key); ok && len(e.times) > 0 {
		newest := 0
		for i, v := range e.times {
			if v > e.times[newest] {
				newest = i
			}
		}
		e.times[newest] = 0
	}
	return nil
}

// Count implements Store. It does not make key more recently used: reading
// a counter keeps nothing alive.
func (m *Memory) Count(_ context.Context, key string, window time.Duration) (int, error) {
	now := m.now().UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.keys.Peek(key); ok {
		return e.count(now, window), nil
	}
	return 0, nil
}

// Clear implements Store.
func (m *Memory) Clear(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys.Remove(key)
	return nil
}

// Once implements Store.
func (m *Memory) Once(_ context.Context, key string, ttl time.Duration) (bool, error) {
	now := m.now().UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.ring(key, 0)
	if e.onceUntil > now {
		return false, nil
	}
	e.onceUntil = now + int64(ttl)
	return true, nil
}

// Suspend implements Store.
func (m *Memory) Suspend(_ context.Context, login string, s Suspension) error {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	// Drop the lifted ones here, so the map holds only suspensions in force
	// (plus those lifted since the last Suspend).
	for k, old := range m.suspensions {
		if !old.Until.After(now) {
			delete(m.suspensions, k)
		}
	}
	if s.Until.After(now) {
		m.suspensions[LoginKey(login)] = s
	}
	return nil
}

// Suspended implements Store.
func (m *Memory) Suspended(_ context.Context, login string) (Suspension, bool, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.suspensions[LoginKey(login)]
	if !ok || !s.Until.After(now) {
		return Suspension{}, false, nil
	}
	return s, true, nil
}

// Unsuspend implements Store.
func (m *Memory) Unsuspend(_ context.Context, login string) (bool, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	k := LoginKey(login)
	s, ok := m.suspensions[k]
	delete(m.suspensions, k)
	return ok && s.Until.After(now), nil
}

// adoptSuspensions adds to pending (by LoginKey, guarded by mu) every
// suspension in force here that pending lacks, and returns how many
// pending then holds.
func (m *Memory) adoptSuspensions(pending map[string]Suspension, mu *sync.Mutex) int {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	for k, s := range m.suspensions {
		if _, ok := pending[k]; !ok && s.Until.After(now) {
			pending[k] = s
		}
	}
	return len(pending)
}

// mirror makes key's counter hold the n events another store (Redis)
// reported within its window, so that counting can go on here from them:
// the oldest at sp.oldest, the n-1 others at sp.newest. The store told
// only those two times; dating the others at the newest keeps them
// counted until the last of them would lift, never less, so an outage
// never hands a login its budget back sooner than Redis would have.
func (m *Memory) mirror(key string, n int, sp span) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n <= 0 {
		if e, ok := m.keys.Peek(key); ok {
			clear(e.times)
		}
		return
	}
	newest := sp.newest
	if newest.IsZero() {
		newest = m.now()
	}
	oldest := sp.oldest
	if oldest.IsZero() || oldest.After(newest) {
		oldest = newest
	}
	e := m.ring(key, n)
	clear(e.times)
	e.times[0] = oldest.UnixNano()
	for i := 1; i < n; i++ {
		e.times[i] = newest.UnixNano()
	}
}

// Len returns how many counter and Once keys are tracked (tests, metrics).
func (m *Memory) Len() int { return m.keys.Len() }

// Close implements Store; a Memory holds nothing to release.
func (m *Memory) Close() error { return nil }

// add records t in an empty slot, else in a new one while the ring is
// shorter than limit, else over the oldest time.
//
// The ring grows one slot at a time, up to limit, only when no slot is
// empty, so it is as long as the most events held at once, not as the
// limit: a lockout counter whose attempts are given back (RemoveNewest)
// stays a few slots long even at --auth-max-failures 100000, and every
// count, add and RemoveNewest scans only those (a ring made at the limit's
// size cost 800 KB and three scans of 100,000 slots per AUTH).
func (e *entry) add(t int64, limit int) {
	oldest := -1
	for i, v := range e.times {
		if v == 0 {
			e.times[i] = t
			return
		}
		if oldest < 0 || v < e.times[oldest] {
			oldest = i
		}
	}
	if len(e.times) < limit || oldest < 0 {
		e.times = append(e.times, t)
		return
	}
	e.times[oldest] = t
}

// count returns the number of remembered events newer than now-window.
func (e *entry) count(now int64, window time.Duration) int {
	since := now - int64(window)
	n := 0
	for _, t := range e.times {
		if t != 0 && t > since {
			n++
		}
	}
	return n
}
