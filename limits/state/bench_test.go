package state

import (
	"context"
	"testing"
	"time"

	"github.com/postern/postern/internal/testkit"
)

// BenchmarkStoreAdd measures one Add (one Lua script round trip for Redis)
// against memory and a local redis-server, 8 goroutines at once:
//
//	go test ./limits/state -run '^$' -bench StoreAdd
func BenchmarkStoreAdd(b *testing.B) {
	srv := testkit.StartRedis(b)
	r, err := NewRedis(RedisConfig{URL: srv.URL()})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	for _, s := range []struct {
		name  string
		store Store
	}{{"memory", NewMemory(MemoryConfig{})}, {"redis", r}, {"fallback-redis", NewFallback(r, NewMemory(MemoryConfig{}), FallbackConfig{})}} {
		b.Run(s.name, func(b *testing.B) {
			ctx := context.Background()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					// 10 per window like the lockout: mostly refused once full,
					// which costs the same script.
					if _, _, err := s.store.Add(ctx, "bench", 10, time.Minute); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkMemoryReserveRelease is one AUTH's use of the lockout counter
// (Add, then RemoveNewest on success) at a large --auth-max-failures: its
// cost must follow the attempts held at once, not the limit.
//
//	go test ./limits/state -run '^$' -bench MemoryReserveRelease
func BenchmarkMemoryReserveRelease(b *testing.B) {
	m := NewMemory(MemoryConfig{})
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		if _, _, err := m.Add(ctx, "lockout", 100000, time.Hour); err != nil {
			b.Fatal(err)
		}
		if err := m.RemoveNewest(ctx, "lockout"); err != nil {
			b.Fatal(err)
		}
	}
}
