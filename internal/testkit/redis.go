package testkit

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
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
	return StartRedisWithPassword(t, "")
}

// StartRedisWithPassword starts a redis-server that requires password
// (none if empty).
func StartRedisWithPassword(t testing.TB, password string) *RedisServer {
	t.Helper()
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
