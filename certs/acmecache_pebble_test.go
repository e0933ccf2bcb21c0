package certs

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postern/postern/certs/certstest"
	"github.com/postern/postern/internal/testkit"
)

// TestACMERedisReplicasRenew: three Managers sharing one RedisCache store
// (three replicas) get one certificate from Pebble for a name, all serve
// it, and when autocert's renewal comes (Pebble issues 30-second
// certificates: at about 20 s) one of them renews and the other two take
// its certificate: two issuances in all, one serial everywhere.
func TestACMERedisReplicasRenew(t *testing.T) {
	p := certstest.StartPebble(t, 30*time.Second)
	r := testkit.StartRedis(t)
	const name = "mail.postern.test"
	var addrs [3]string
	for i := range addrs {
		client := redis.NewClient(&redis.Options{Addr: r.Addr})
		t.Cleanup(func() { client.Close() })
		cache, err := NewRedisCache(RedisCacheConfig{
			Client: client, Key: testCacheKey, Log: testLogger(),
			LocalDir: filepath.Join(t.TempDir(), "acme"),
		})
		if err != nil {
			t.Fatal(err)
		}
		// Only one replica can have Pebble's HTTP-01 port; the token of
		// an order by another reaches it through the cache.
		http01 := "127.0.0.1:0"
		if i == 0 {
			http01 = "127.0.0.1:" + strconv.Itoa(p.HTTPPort)
		}
		m := runACMEManager(t, p, Config{Hostname: name, ACMEDomains: []string{name}, ACMEHTTPAddr: http01, ACMEShared: cache})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = serveTLSOn(t, ln, m.TLSConfig())
	}
	issued := func() int { return strings.Count(p.Log(), "Issued certificate serial") }
	serials := func() (all [3]string) {
		for i, a := range addrs {
			st := waitIssued(t, p, a, name, 90*time.Second)
			all[i] = st.PeerCertificates[0].SerialNumber.String()
		}
		return all
	}
	first := serials()
	if first[0] != first[1] || first[1] != first[2] {
		t.Fatalf("the replicas serve different certificates: %v", first)
	}
	if n := issued(); n != 1 {
		t.Fatalf("Pebble issued %d certificates, want 1", n)
	}
	deadline := time.Now().Add(p.Validity + 20*time.Second)
	for {
		now := serials()
		if now[0] != first[0] && now[0] == now[1] && now[1] == now[2] {
			if n := issued(); n != 2 {
				t.Errorf("after one renewal Pebble issued %d certificates, want 2", n)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no common renewed certificate: first %v, now %v; issued %d", first, now, issued())
		}
		time.Sleep(500 * time.Millisecond)
	}
}
