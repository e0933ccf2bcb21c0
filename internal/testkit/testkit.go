// Package testkit holds the helpers every package's tests share to run real
// components: finding a required tool (a failure under CI=true, a skip
// otherwise), picking free loopback ports, and starting a process that the
// test stops by PID.
package testkit

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// InCI reports whether missing components must fail the run (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// RequireTool returns the path of the named executable. If it is missing the
// test fails under CI=true and is skipped otherwise (`make deps` installs it).
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := dir + "/" + name
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	Missing(t, "required tool %q is not installed", name)
	return ""
}

// FreePort returns a loopback TCP port that is free now and lies below the
// kernel's ephemeral range (net.ipv4.ip_local_port_range). A port picked by
// binding :0 lies inside that range, so after it is released any outgoing
// connection on the machine may take it as its local port — and a Postfix
// or a replica the test restarts on the same port then fails to bind with
// EADDRINUSE (its reason logged nowhere a test sees). Below the range only a
// test's own bind can take it: ports are drawn at random so that test
// binaries running side by side rarely draw the same one, and never twice
// within one binary.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 1000 {
		p := freePorts.draw()
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		return p
	}
	t.Fatalf("picking a free port: none free in %d–%d after 1000 tries", freePortLow, freePorts.high)
	return 0
}

// freePortLow is the lowest port FreePort hands out: above the registered
// ports services on a test machine are likely to listen on.
const freePortLow = 20000

// freePorts is the one pool FreePort draws from in this test binary. It is
// test-helper state shared by every test of the binary by design: the
// record of ports already handed out is what keeps two tests running in
// parallel from getting the same one.
var freePorts = &portPool{given: map[int]bool{}}

type portPool struct {
	mu    sync.Mutex
	once  sync.Once
	high  int // the last port below the ephemeral range
	rnd   *rand.Rand
	given map[int]bool
}

func (pp *portPool) draw() int {
	pp.once.Do(func() {
		pp.high = ephemeralLow() - 1
		pp.rnd = rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(time.Now().UnixNano())))
	})
	pp.mu.Lock()
	defer pp.mu.Unlock()
	for {
		p := freePortLow + pp.rnd.IntN(pp.high-freePortLow+1)
		if !pp.given[p] {
			pp.given[p] = true
			return p
		}
	}
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768 on
// Linux unless configured otherwise).
func ephemeralLow() int {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var lo, hi int
		if _, err := fmt.Sscan(string(b), &lo, &hi); err == nil && lo > freePortLow+1000 {
			low = lo
		}
	}
	return low
}

// FreeAddr returns "127.0.0.1:PORT" with a free port.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", FreePort(t))
}

// WaitTCP waits until addr accepts TCP connections or the timeout passes.
func WaitTCP(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		// A dial timeout above a second: Linux retransmits a dropped SYN
		// after one second, and a loaded machine can drop the first.
		c, err := net.DialTimeout("tcp", addr, 1500*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not accept connections within %v: %v", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Process is a child process started by a test and stopped by its PID.
type Process struct {
	Cmd     *exec.Cmd
	mu      sync.Mutex
	output  bytes.Buffer
	changed chan struct{} // closed and replaced on every write to output
	done    chan struct{}
	err     error
}

// Output returns what the process wrote to stdout and stderr so far.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

func (p *Process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.changed)
	p.changed = make(chan struct{})
	return p.output.Write(b)
}

// outputChanged returns the output so far and a channel closed at the next write.
func (p *Process) outputChanged() (string, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String(), p.changed
}

// WaitOutput waits until cond holds for what the process has written so
// far, checking again at each write; the test fails if the process exits
// first or timeout passes.
func (p *Process) WaitOutput(t testing.TB, what string, timeout time.Duration, cond func(output string) bool) {
	t.Helper()
	WaitOutputs(t, what, timeout, func() bool { return cond(p.Output()) }, p)
}

// WaitOutputs waits until cond holds, checking again whenever one of procs
// writes; the test fails if one of them exits first or timeout passes.
func WaitOutputs(t testing.TB, what string, timeout time.Duration, cond func() bool, procs ...*Process) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		changed := make(chan struct{})
		var once sync.Once
		stop := make(chan struct{})
		for _, p := range procs {
			_, ch := p.outputChanged()
			go func() {
				select {
				case <-ch:
				case <-p.done:
				case <-stop:
					return
				}
				once.Do(func() { close(changed) })
			}()
		}
		if cond() {
			close(stop)
			return
		}
		select {
		case <-changed:
			close(stop)
			for _, p := range procs {
				select {
				case <-p.done:
					if !cond() {
						t.Fatalf("%s exited while waiting for %s:\n%s", p.Cmd.Path, what, p.Output())
					}
					return
				default:
				}
			}
		case <-deadline.C:
			close(stop)
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// Start runs the command in its own process group and registers a cleanup
// that stops it (SIGTERM to its PID's group, then SIGKILL after 5 s).
func Start(t testing.TB, name string, args ...string) *Process {
	t.Helper()
	return StartCmd(t, exec.Command(name, args...))
}

// StartCmd is Start for a prepared command (env, dir already set).
func StartCmd(t testing.TB, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{Cmd: cmd, done: make(chan struct{}), changed: make(chan struct{})}
	cmd.Stdout = p
	cmd.Stderr = p
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("output of %s:\n%s", cmd.Path, p.Output())
		}
	})
	return p
}

// Signal sends sig to the process (not its group).
func (p *Process) Signal(sig syscall.Signal) error {
	return p.Cmd.Process.Signal(sig)
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit and returns its exit error.
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stop terminates the process group by PID and waits for the exit.
func (p *Process) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	pid := p.Cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-p.done
	}
}
