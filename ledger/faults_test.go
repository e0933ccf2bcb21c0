package ledger

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/internal/testkit"
	"github.com/postern/postern/proxy/proxytest"
)

// The fault script: on a seeded random order and random gaps, it kills a
// replica with SIGKILL and starts it again, drains another with SIGTERM and
// starts it again, sends SIGHUP to one, pauses Redis with SIGSTOP for 5 s,
// and stops one Postfix for 10 s. Every fault is a line of the timeline.

const (
	redisPause   = 5 * time.Second
	postfixPause = 10 * time.Second
)

// fault is one fault injected.
type fault struct {
	Kind   string // kill, drain, hup, redis, postfix
	Target string // the replica's hostname, "redis", or the mailbox (A, B)
	Start  time.Time
	End    time.Time
}

func (f fault) String() string {
	return fmt.Sprintf("%s FAULT %s %s (until %s)", f.Start.UTC().Format("15:04:05.000"), f.Kind, f.Target,
		f.End.UTC().Format("15:04:05.000"))
}

// cluster is what the fault script acts on.
type cluster struct {
	replicas []*replica
	redis    *testkit.RedisServer
	postfix  []*proxytest.Postfix // the mailboxes A and B
	log      func(string)         // a line of the timeline
}

// mailboxName names postfix[i] in the ledger: A, B.
func mailboxName(i int) string { return string(rune('A' + i)) }

var faultKinds = []string{"kill", "drain", "hup", "redis", "postfix"}

// runFaults runs the script until stop is closed, at least one full round
// of every fault kind; it closes round1 after the first round. It runs on
// the test's goroutine (it may fail the test).
func (c *cluster) runFaults(t *testing.T, rng *rand.Rand, stop <-chan struct{}, round1 chan<- struct{}) []fault {
	t.Helper()
	var done []fault
	for round := 0; ; round++ {
		// Each round kills one replica, drains another and reloads
		// the third.
		replicas := rng.Perm(len(c.replicas))
		for _, k := range rng.Perm(len(faultKinds)) {
			if round > 0 && stopped(stop) {
				return done
			}
			gap := time.Second + time.Duration(rng.Int64N(int64(4*time.Second)))
			select {
			case <-time.After(gap):
			case <-stop:
				if round > 0 {
					return done
				}
			}
			f := c.inject(t, rng, faultKinds[k], replicas)
			done = append(done, f)
			c.log(f.String())
		}
		if round == 0 {
			close(round1)
		}
	}
}

func stopped(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// inject runs one fault of kind and returns it once the part is back;
// replicas[0] is the one to kill, [1] to drain, [2] to reload.
func (c *cluster) inject(t *testing.T, rng *rand.Rand, kind string, replicas []int) fault {
	t.Helper()
	f := fault{Kind: kind, Start: time.Now()}
	switch kind {
	case "kill":
		r := c.replicas[replicas[0]]
		f.Target = r.hostname()
		c.log(fmt.Sprintf("%s FAULT kill %s: SIGKILL pid %d", time.Now().UTC().Format("15:04:05.000"), r.name, r.proc().Cmd.Process.Pid))
		r.signal(t, syscall.SIGKILL)
		r.waitExit(t, 10*time.Second)
		r.start(t)
	case "drain":
		r := c.replicas[replicas[1]]
		f.Target = r.hostname()
		c.log(fmt.Sprintf("%s FAULT drain %s: SIGTERM pid %d", time.Now().UTC().Format("15:04:05.000"), r.name, r.proc().Cmd.Process.Pid))
		r.signal(t, syscall.SIGTERM)
		r.waitExit(t, 30*time.Second) // --shutdown-timeout 5s, and a busy machine
		r.start(t)
	case "hup":
		r := c.replicas[replicas[2]]
		f.Target = r.hostname()
		p := r.proc()
		before := strings.Count(p.Output(), "users file reloaded")
		r.signal(t, syscall.SIGHUP)
		p.WaitOutput(t, r.name+" reloading", 30*time.Second, func(out string) bool {
			return strings.Count(out, "users file reloaded") > before
		})
	case "redis":
		f.Target = "redis"
		if err := c.redis.Proc.Signal(syscall.SIGSTOP); err != nil {
			t.Fatalf("SIGSTOP redis-server: %v", err)
		}
		time.Sleep(redisPause)
		if err := c.redis.Proc.Signal(syscall.SIGCONT); err != nil {
			t.Fatalf("SIGCONT redis-server: %v", err)
		}
	case "postfix":
		i := rng.IntN(len(c.postfix))
		f.Target = mailboxName(i)
		c.log(fmt.Sprintf("%s FAULT postfix %s: stopping its master (SIGTERM to its process group)", time.Now().UTC().Format("15:04:05.000"), f.Target))
		c.postfix[i].Stop()
		time.Sleep(postfixPause)
		c.postfix[i].Start()
	}
	f.End = time.Now()
	return f
}
