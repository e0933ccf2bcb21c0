package control

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestControlSocketNeverOpenUnderUmask0: under umask 000 (containers,
// systemd UMask=0000) the control socket, which unsuspends logins, is
// never visible under its path with group or other permission, not even
// for a moment. Two witnesses over 200 binds: inotify sees no chmod under
// the final name (bind(2) there gives 0777 under umask 0, so a chmod after
// it means the socket was open until then), and a goroutine stat'ing the
// path in a tight loop never sees a mode wider than 0600.
//
// Not parallel: the umask is process-wide (parallel tests start only after
// the sequential ones).
func TestControlSocketNeverOpenUnderUmask0(t *testing.T) {
	t.Parallel()
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := t.TempDir()
	path := filepath.Join(dir, "control.sock")

	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatalf("inotify: %v", err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_ATTRIB|unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		t.Fatalf("inotify watch: %v", err)
	}

	var stop atomic.Bool
	var wide atomic.Uint32 // a mode seen with group/other bits, +1
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			if fi, err := os.Lstat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
				wide.Store(uint32(fi.Mode().Perm()) + 1)
			}
		}
	}()
	for i := 0; i < 200; i++ {
		ln, err := Bind(path)
		if err != nil {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("bind %d: %v", i, err)
		}
		if fi, err := os.Lstat(path); err != nil {
			t.Errorf("bind %d: %v", i, err)
		} else if fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
			t.Errorf("bind %d: %s is %v, want a socket 0600", i, path, fi.Mode())
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 1 {
			t.Errorf("bind %d: %d entries in the socket's directory, want the socket alone (private directory left?)", i, len(ents))
		}
		ln.Close()
	}
	stop.Store(true)
	wg.Wait()
	if m := wide.Load(); m != 0 {
		t.Errorf("the socket was seen at %s with mode %o under umask 0: other local users could connect", path, m-1)
	}
	var chmods, appeared int
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			t.Fatalf("reading inotify events: %v", err)
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)], "\x00"))
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
				t.Fatal("inotify queue overflowed")
			}
			if name != filepath.Base(path) {
				continue
			}
			switch {
			case ev.Mask&unix.IN_ATTRIB != 0:
				chmods++
			case ev.Mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0:
				appeared++
			}
		}
	}
	if appeared != 200 {
		t.Errorf("inotify: the socket's path appeared %d times in 200 binds", appeared)
	}
	if chmods != 0 {
		t.Errorf("inotify: the socket's mode changed %d times under its final path: it was bound there with the umask's mode (0777) and open until the chmod", chmods)
	}
}

// TestControlSocketStaleAndLive: a socket file left by a dead instance is
// replaced, a live one is an error and left alone, and Close removes the
// socket.
func TestControlSocketStaleAndLive(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "control.sock")
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close() // the file stays, nobody answers: a dead instance's
	ln, err := Bind(path)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dialing the control socket: %v", err)
	}
	conn.Close()
	if ln.Addr().String() != path {
		t.Errorf("Addr %q, want %q", ln.Addr(), path)
	}
	if _, err := Bind(path); err == nil || !strings.Contains(err.Error(), "another postern answers") {
		t.Errorf("second bind over a live socket: %v", err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("the live socket is gone after the refused second bind: %v", err)
	}
	ln.Close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket file after Close: %v, want none", err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 0 {
		t.Errorf("%d entries left in the socket's directory", len(ents))
	}
}
