package state

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// keyPrefix namespaces every key Postern writes, so a Redis shared with
// other applications is safe and `redis-cli --scan --pattern 'postern:*'`
// shows them all.
const keyPrefix = "postern:"

// maxKeyLen is the longest caller key used as it is; longer ones are hashed,
// so that no key grows with what a client sends.
const maxKeyLen = 128

// The scripts take the time from the Redis server (TIME), not from the
// replica calling: every replica then measures the same window on the same
// clock, and a replica whose clock is off cannot stretch or shrink it.
// (Redis ≥ 5 replicates a script's effects, not the script, so TIME is
// allowed.) Times are milliseconds.
const luaNow = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// luaSpan returns the times of the oldest and the newest event of key
// within the window (those scored above since), 0 for none. Fallback
// keeps them with the count, so that an outage continues from it (span).
const luaSpan = `local function span(key, since)
  local o = redis.call('ZRANGEBYSCORE', key, '(' .. since, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  local n = redis.call('ZREVRANGEBYSCORE', key, '+inf', '(' .. since, 'WITHSCORES', 'LIMIT', 0, 1)
  return tonumber(o[2] or 0), tonumber(n[2] or 0)
end
`

// addScript: KEYS[1] the counter (a sorted set of events scored by time),
// ARGV limit, window in ms, a unique member. Drops events older than the
// window, and adds one unless limit are left. Returns {count, added,
// oldest, newest}.
var addScript = redis.NewScript(luaNow + luaSpan + `
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
local added = 0
if n < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  n = n + 1
  added = 1
end
local oldest, newest = span(KEYS[1], now - window)
return {n, added, oldest, newest}
`)

// recordScript: as addScript, but always adds, then keeps only the newest
// limit events. Returns {count, oldest, newest}.
var recordScript = redis.NewScript(luaNow + luaSpan + `
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(limit + 1))
redis.call('PEXPIRE', KEYS[1], window)
local oldest, newest = span(KEYS[1], now - window)
return {redis.call('ZCARD', KEYS[1]), oldest, newest}
`)

// countScript: the events of KEYS[1] within ARGV[1] ms. Returns {count,
// oldest, newest}.
var countScript = redis.NewScript(luaNow + luaSpan + `
local since = now - tonumber(ARGV[1])
local oldest, newest = span(KEYS[1], since)
return {redis.call('ZCOUNT', KEYS[1], '(' .. since, '+inf'), oldest, newest}
`)

// Redis is a Store shared by every replica using the same Redis. Each
// operation is one atomic step on the server: a Lua script (EVALSHA, EVAL
// when the server does not have it yet) or a single command (ZPOPMAX, DEL,
// SET NX). Every key starts with "postern:" and expires by itself: a counter
// after its window, a Once key after its ttl, a suspension at its end.
type Redis struct {
	client  *redis.Client
	timeout time.Duration

	// Event members must be unique within a sorted set, across replicas:
	// a random prefix per store and a sequence number.
	memberPrefix string
	seq          atomic.Uint64
}

// RedisConfig is how to reach Redis.
type RedisConfig struct {
	// URL is redis://[USER@]HOST:PORT/DB or rediss://… (TLS). A password
	// in the URL is refused: it would show in the process list; use
	// Password.
	URL string
	// Password, if set, authenticates (from --state-password-file).
	Password string
	// Timeout bounds each call. Default DefaultRedisTimeout.
	Timeout time.Duration
}

// NewRedis checks cfg and returns a Redis store. It does not connect yet: a
// Redis that is down at start is Fallback's business, not a reason not to
// start.
func NewRedis(cfg RedisConfig) (*Redis, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("state: parse redis URL: %w", err)
	}
	if _, has := u.User.Password(); has {
		return nil, errors.New("state: the redis URL holds a password; put it in --state-password-file instead")
	}
	opts, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("state: parse redis URL %s: %w", u.Redacted(), err)
	}
	if cfg.Password != "" {
		opts.Password = cfg.Password
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultRedisTimeout
	}
	opts.DialTimeout = cfg.Timeout
	opts.ReadTimeout = cfg.Timeout
	opts.WriteTimeout = cfg.Timeout
	opts.PoolTimeout = cfg.Timeout
	opts.ContextTimeoutEnabled = true
	opts.MaxRetries = -1 // a retry would double the stall; Fallback answers instead
	opts.ClientName = "postern"
	// No CLIENT SETINFO at connect: Valkey and older Redis answer it with
	// an error that go-redis would only log.
	opts.DisableIdentity = true

	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("state: random member prefix: %w", err)
	}
	return &Redis{
		client:       redis.NewClient(opts),
		timeout:      cfg.Timeout,
		memberPrefix: hex.EncodeToString(b[:]) + ":",
	}, nil
}

// key namespaces k, hashing it when it is long.
func (r *Redis) key(k string) string {
	if len(k) > maxKeyLen {
		sum := sha256.Sum256([]byte(k))
		k = "h:" + hex.EncodeToString(sum[:])
	}
	return keyPrefix + k
}

func (r *Redis) member() string {
	return r.memberPrefix + strconv.FormatUint(r.seq.Add(1), 36)
}

// ms is d in whole milliseconds, at least 1 (Redis windows and ttls are ms).
func ms(d time.Duration) int64 {
	return max(d.Milliseconds(), 1)
}

func (r *Redis) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.timeout)
}

// span is when the oldest and the newest event a counter holds within its
// window happened (on Redis's clock), zero when it holds none.
type span struct{ oldest, newest time.Time }

// spanOf reads a span from the milliseconds a script returned.
func spanOf(oldest, newest int64) span {
	var sp span
	if oldest > 0 {
		sp.oldest = time.UnixMilli(oldest)
	}
	if newest > 0 {
		sp.newest = time.UnixMilli(newest)
	}
	return sp
}

// Add implements Store.
func (r *Redis) Add(ctx context.Context, key string, limit int, window time.Duration) (int, bool, error) {
	n, added, _, err := r.addSpan(ctx, key, limit, window)
	return n, added, err
}

// addSpan is Add that also returns the span of the counter's events.
func (r *Redis) addSpan(ctx context.Context, key string, limit int, window time.Duration) (int, bool, span, error) {
	if limit <= 0 {
		return 0, false, span{}, errLimit(limit)
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	res, err := addScript.Run(ctx, r.client, []string{r.key(key)}, limit, ms(window), r.member()).Int64Slice()
	if err != nil {
		return 0, false, span{}, fmt.Errorf("state: redis add: %w", err)
	}
	if len(res) != 4 {
		return 0, false, span{}, fmt.Errorf("state: redis add: script returned %v", res)
	}
	return int(res[0]), res[1] == 1, spanOf(res[2], res[3]), nil
}

// Record implements Store.
func (r *Redis) Record(ctx context.Context, key string, limit int, window time.Duration) (int, error) {
	n, _, err := r.recordSpan(ctx, key, limit, window)
	return n, err
}

// recordSpan is Record that also returns the span of the counter's events.
func (r *Redis) recordSpan(ctx context.Context, key string, limit int, window time.Duration) (int, span, error) {
	if limit <= 0 {
		return 0, span{}, errLimit(limit)
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	res, err := recordScript.Run(ctx, r.client, []string{r.key(key)}, limit, ms(window), r.member()).Int64Slice()
	if err != nil {
		return 0, span{}, fmt.Errorf("state: redis record: %w", err)
	}
	if len(res) != 3 {
		return 0, span{}, fmt.Errorf("state: redis record: script returned %v", res)
	}
	return int(res[0]), spanOf(res[1], res[2]), nil
}

// RemoveNewest implements Store.
func (r *Redis) RemoveNewest(ctx context.Context, key string) error {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	if err := r.client.ZPopMax(ctx, r.key(key)).Err(); err != nil {
		return fmt.Errorf("state: redis remove newest: %w", err)
	}
	return nil
}

// Count implements Store.
func (r *Redis) Count(ctx context.Context, key string, window time.Duration) (int, error) {
	n, _, err := r.countSpan(ctx, key, window)
	return n, err
}

// countSpan is Count that also returns the span of the counter's events.
func (r *Redis) countSpan(ctx context.Context, key string, window time.Duration) (int, span, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	res, err := countScript.Run(ctx, r.client, []string{r.key(key)}, ms(window)).Int64Slice()
	if err != nil {
		return 0, span{}, fmt.Errorf("state: redis count: %w", err)
	}
	if len(res) != 3 {
		return 0, span{}, fmt.Errorf("state: redis count: script returned %v", res)
	}
	return int(res[0]), spanOf(res[1], res[2]), nil
}

// Clear implements Store.
func (r *Redis) Clear(ctx context.Context, key string) error {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	// The key's Once goes with it, as in Memory, where both share one entry.
	if err := r.client.Del(ctx, r.key(key), r.key("once:"+key)).Err(); err != nil {
		return fmt.Errorf("state: redis clear: %w", err)
	}
	return nil
}

// Once implements Store: SET NX PX, true for the one caller that set it.
func (r *Redis) Once(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	ok, err := r.client.SetNX(ctx, r.key("once:"+key), 1, time.Duration(ms(ttl))*time.Millisecond).Result()
	if err != nil {
		return false, fmt.Errorf("state: redis once: %w", err)
	}
	return ok, nil
}

func (r *Redis) suspensionKey(login string) string {
	return r.key("suspend:" + LoginKey(login))
}

// suspendIfNone sets the suspension of the login whose LoginKey is
// loginKey, unless Redis holds one already (that one, decided by another
// replica or lifted and decided again, stands).
func (r *Redis) suspendIfNone(ctx context.Context, loginKey string, s Suspension) error {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	v, err := json.Marshal(suspensionJSON{Reason: s.Reason, Since: s.Since.UnixMilli(), Until: s.Until.UnixMilli()})
	if err != nil {
		return fmt.Errorf("state: encode suspension: %w", err)
	}
	err = r.client.SetArgs(ctx, r.key("suspend:"+loginKey), v, redis.SetArgs{Mode: "NX", ExpireAt: s.Until}).Err()
	if err != nil && !errors.Is(err, redis.Nil) { // redis.Nil: one was there
		return fmt.Errorf("state: redis suspend: %w", err)
	}
	return nil
}

// suspensionJSON is a Suspension as stored: times in Unix milliseconds.
type suspensionJSON struct {
	Reason string `json:"reason"`
	Since  int64  `json:"since"`
	Until  int64  `json:"until"`
}

// Suspend implements Store. The key expires at s.Until by itself.
func (r *Redis) Suspend(ctx context.Context, login string, s Suspension) error {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	v, err := json.Marshal(suspensionJSON{Reason: s.Reason, Since: s.Since.UnixMilli(), Until: s.Until.UnixMilli()})
	if err != nil {
		return fmt.Errorf("state: encode suspension: %w", err)
	}
	if !s.Until.After(time.Now()) {
		err = r.client.Del(ctx, r.suspensionKey(login)).Err()
	} else {
		err = r.client.SetArgs(ctx, r.suspensionKey(login), v, redis.SetArgs{ExpireAt: s.Until}).Err()
	}
	if err != nil {
		return fmt.Errorf("state: redis suspend: %w", err)
	}
	return nil
}

// Suspended implements Store.
func (r *Redis) Suspended(ctx context.Context, login string) (Suspension, bool, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	v, err := r.client.Get(ctx, r.suspensionKey(login)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Suspension{}, false, nil
	}
	if err != nil {
		return Suspension{}, false, fmt.Errorf("state: redis suspended: %w", err)
	}
	var sj suspensionJSON
	if err := json.Unmarshal(v, &sj); err != nil {
		return Suspension{}, false, fmt.Errorf("state: decode suspension: %w", err)
	}
	s := Suspension{Reason: sj.Reason, Since: time.UnixMilli(sj.Since), Until: time.UnixMilli(sj.Until)}
	if !s.Until.After(time.Now()) {
		return Suspension{}, false, nil
	}
	return s, true, nil
}

// Unsuspend implements Store.
func (r *Redis) Unsuspend(ctx context.Context, login string) (bool, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	n, err := r.client.Del(ctx, r.suspensionKey(login)).Result()
	if err != nil {
		return false, fmt.Errorf("state: redis unsuspend: %w", err)
	}
	return n > 0, nil
}

// Ping checks that Redis answers and takes writes (Fallback's probe): a
// plain PING would pass on a read-only replica after a failover, or on a
// Redis out of memory, and every operation would then fail again.
func (r *Redis) Ping(ctx context.Context) error {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	if err := r.client.Set(ctx, keyPrefix+"probe", r.member(), 10*time.Second).Err(); err != nil {
		return fmt.Errorf("state: redis probe: %w", err)
	}
	return nil
}

// markerKey is the one key Postern writes without a TTL: its value, the
// data's generation, lasts as long as Redis keeps what Postern wrote. A
// Redis that lost its data (restarted without persistence, flushed, keys
// evicted) answers without it, and the first instance to look writes a
// new one: every instance that knew the old one can tell.
const markerKey = keyPrefix + "marker"

// generationScript returns the marker's value, first setting it to ARGV[1]
// when it is missing.
var generationScript = redis.NewScript(`local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
`)

// dataGeneration returns the generation of Redis's data, starting a new
// one (a value unique to this call) if it has none.
func (r *Redis) dataGeneration(ctx context.Context) (string, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	g, err := generationScript.Run(ctx, r.client, []string{markerKey}, r.member()).Text()
	if err != nil {
		return "", fmt.Errorf("state: redis marker: %w", err)
	}
	return g, nil
}

// Close implements Store.
func (r *Redis) Close() error { return r.client.Close() }
