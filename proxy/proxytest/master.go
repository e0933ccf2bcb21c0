package proxytest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// masterProcess is a running Postfix master daemon.
//
// testkit.StartCmd cannot run it: it makes the child a process-group
// leader, and the master, unless it is PID 1 (-i), insists on calling
// setsid(), which fails for a group leader, so the master exits at once
// with "unable to set session id" (reported to syslog only). `postfix
// start-fg` has the same flaw plus a shell in between. So the master is
// started in the test's process group and creates its own session; its
// process-group ID is then its PID, every daemon it forks joins that
// group, and stopping signals that group by the PID we hold — never
// anything by name.
type masterProcess struct {
	cmd  *exec.Cmd
	done chan struct{}

	mu     sync.Mutex
	output bytes.Buffer
}

func (m *masterProcess) Write(b []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.output.Write(b)
}

// Output is what the master wrote to stdout and stderr.
func (m *masterProcess) Output() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.output.String()
}

func startMaster(cmd *exec.Cmd) (*masterProcess, error) {
	m := &masterProcess{cmd: cmd, done: make(chan struct{})}
	cmd.Stdout = m
	cmd.Stderr = m
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("running %s: %w", cmd.Path, err)
	}
	go func() {
		_ = cmd.Wait()
		close(m.done)
	}()
	return m, nil
}

// signal sends sig to the master's process group, or to the master alone
// if it has not created its group yet.
func (m *masterProcess) signal(sig syscall.Signal) {
	pid := m.cmd.Process.Pid
	if err := syscall.Kill(-pid, sig); errors.Is(err, syscall.ESRCH) {
		_ = syscall.Kill(pid, sig)
	}
}

// stop terminates the master and its daemons and returns once nothing
// accepts connections on addr any more. SIGTERM makes the master pass the
// signal on and exit at once; the smtpd children share its listening
// socket, so the port is only free once they are gone as well.
func (m *masterProcess) stop(addr string) {
	select {
	case <-m.done:
	default:
		m.signal(syscall.SIGTERM)
		select {
		case <-m.done:
		case <-time.After(5 * time.Second):
			m.signal(syscall.SIGKILL)
			<-m.done
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A daemon of the group still holds the port (one ignoring
	// SIGTERM), so the group still exists: finish it.
	_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
}
