package testkit

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisServer is a redis-server a test started on a free loopback port,
// with its own config file, no persistence, stopped by PID at cleanup.
type RedisServer struct {
	Addr     string // 127.0.0.1:PORT
	Password string // requirepass, "" for none
	Proc     *Process

	path string // redis-server
	conf string // the config file
}

// URL is the --state value for this server (database 0).
func (r *RedisServer) URL() string { return "redis://" + r.Addr + "/0" }

// StartRedis starts a redis-server without a password.
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	return StartRedisWith(t, RedisOptions{})
}

// StartRedisWithPassword starts a redis-server that requires password
// (none if empty).
func StartRedisWithPassword(t testing.TB, password string) *RedisServer {
	t.Helper()
	return StartRedisWith(t, RedisOptions{Password: password})
}

// RedisOptions configure a redis-server for a test.
type RedisOptions struct {
	Password string // requirepass, "" for none
	// Config is appended to the config file, e.g. "maxmemory-policy
	// allkeys-lru\n" or `rename-command CONFIG ""`.
	Config string
}

// StartRedisWith starts a redis-server configured by opts.
func StartRedisWith(t testing.TB, opts RedisOptions) *RedisServer {
	t.Helper()
	password := opts.Password
	path := RequireRedis(t)
	dir := t.TempDir()
	r := &RedisServer{Addr: FreeAddr(t), Password: password, path: path, conf: filepath.Join(dir, "redis.conf")}
	_, port, _ := net.SplitHostPort(r.Addr)
	// No persistence (save "", appendonly no) and the working directory in
	// the test's temporary directory: nothing outlives the test.
	conf := fmt.Sprintf(`bind 127.0.0.1
port %s
daemonize no
save ""
appendonly no
dir %s
loglevel warning
logfile ""
databases 16
`, port, dir)
	if password != "" {
		conf += fmt.Sprintf("requirepass %q\n", password)
	}
	conf += opts.Config
	if err := os.WriteFile(r.conf, []byte(conf), 0o600); err != nil {
		t.Fatalf("write redis config: %v", err)
	}
	r.start(t)
	return r
}

func (r *RedisServer) start(t testing.TB) {
	t.Helper()
	r.Proc = Start(t, r.path, r.conf)
	WaitTCP(t, r.Addr, 10*time.Second)
}

// Stop stops the server by PID and waits until its port is closed.
func (r *RedisServer) Stop(t testing.TB) {
	t.Helper()
	r.Proc.Stop()
	WaitNotListening(t, r.Addr, 10*time.Second)
}

// Restart starts the server again on the same port (after Stop), empty.
func (r *RedisServer) Restart(t testing.TB) {
	t.Helper()
	r.start(t)
}

// Do runs one command on the server, as redis-cli would, and returns its
// reply; an error fails the test.
func (r *RedisServer) Do(t testing.TB, args ...any) any {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.Addr, Password: r.Password})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := c.Do(ctx, args...).Result()
	if err != nil {
		t.Fatalf("redis %v: %v", args, err)
	}
	return v
}

// Hang stops the server with SIGSTOP: it keeps its port and its data, the
// kernel still accepts connections, and nothing is answered. It goes on
// (SIGCONT) when the test ends.
func (r *RedisServer) Hang(t testing.TB) {
	t.Helper()
	if err := r.Proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP redis-server: %v", err)
	}
	t.Cleanup(func() { r.Proc.Signal(syscall.SIGCONT) })
}

// ReplicaOf makes the server a read-only replica of primary (REPLICAOF):
// from then on writes get READONLY, and once synchronised it holds
// primary's data instead of its own.
func (r *RedisServer) ReplicaOf(t testing.TB, primary *RedisServer) {
	t.Helper()
	host, port, _ := net.SplitHostPort(primary.Addr)
	r.Do(t, "REPLICAOF", host, port)
}
