package control

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Bind binds the control socket at path so that it is never
// connectable by anyone but its owner, whatever the process umask.
//
// bind(2) creates the socket file with mode 0777 &^ umask, and connecting
// needs write permission on it: under umask 000 or 002 (containers,
// systemd UMask=) a socket bound at its final path and chmodded afterwards
// is open to other local users in between, and this socket unsuspends
// logins. So it is bound in a fresh directory of its own (0700: nobody else
// can reach a name inside), chmodded to 0600 there, and only then given its
// final name. The process umask is left alone: it is process-wide, and
// other goroutines create files at the same time.
//
// The final name is given by link(2), not rename(2): link fails when the
// path exists, as bind would, so an instance that bound it since the
// stale-socket check below is not silently replaced.
//
// A socket file left by a dead instance is replaced; one that answers is an
// error.
func Bind(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("--control-socket %s: exists and is not a socket", path)
		}
		if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
			conn.Close()
			return nil, fmt.Errorf("--control-socket %s: another postern answers on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("--control-socket %s: removing the stale socket: %w", path, err)
		}
	}
	// In the socket's own directory: link(2) does not cross filesystems.
	// A short name: a socket path has at most 107 bytes.
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".ctl")
	if err != nil {
		return nil, fmt.Errorf("--control-socket %s: creating its private directory: %w", path, err)
	}
	defer os.RemoveAll(tmp)
	// MkdirTemp asks for 0700 but the umask applies (0777 would leave 0000).
	if err := os.Chmod(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("--control-socket %s: %w", path, err)
	}
	private := filepath.Join(tmp, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: private, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("--control-socket %s: %w", path, err)
	}
	// The private name goes with the directory; Close removes the final one.
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(private, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("--control-socket %s: %w", path, err)
	}
	if err := os.Link(private, path); err != nil {
		ln.Close()
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("--control-socket %s: another postern bound it meanwhile", path)
		}
		return nil, fmt.Errorf("--control-socket %s: %w", path, err)
	}
	return &controlListener{UnixListener: ln, path: path}, nil
}

// controlListener is the control socket under its final name: Addr names
// it, and Close removes it (once), as net.UnixListener does for the
// socket files it creates itself.
type controlListener struct {
	*net.UnixListener
	path   string
	remove sync.Once
}

func (l *controlListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l *controlListener) Close() error {
	err := l.UnixListener.Close()
	l.remove.Do(func() { os.Remove(l.path) })
	return err
}
