package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/postern/postern/auth/usersfile"
)

// newUsersFileMode is the mode of a users file `postern user` creates:
// the hashes are readable by the service's group, by nobody else.
const newUsersFileMode = 0o640

// editUsersFile rewrites the users file at path with edit, which gets the
// file's lines (nil for a file that does not exist yet) and returns the new
// ones. The result must load (usersfile.Parse): a file Postern would
// refuse is never written.
//
// The file is replaced atomically (a temporary file in the same directory,
// synced, then renamed over it), so a reader — postern on SIGHUP — sees
// the old file or the new one, never half of one. An existing file keeps
// its mode, owner and group; a new one is 0640 with the directory's group
// (/etc/postern: root:postern). Concurrent edits are serialised by an
// exclusive flock on the directory (the file itself is replaced, so a lock
// on it would be on the old inode), so none overwrites another's line.
func editUsersFile(path string, edit func(lines []string) ([]string, error)) error {
	// A symlinked users file stays a symlink: the file it names is replaced.
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	dir := filepath.Dir(path)
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("users file %s: %w", path, err)
	}
	defer d.Close()
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("users file %s: locking %s: %w", path, dir, err)
	}
	// The lock goes with d.Close.

	mode, uid, gid := fs.FileMode(newUsersFileMode), -1, -1
	var lines []string
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("users file %s: %w", path, err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		mode, uid, gid = fi.Mode().Perm(), int(st.Uid), int(st.Gid)
		if _, err := usersfile.Parse(bytes.NewReader(raw), path); err != nil {
			return fmt.Errorf("the users file does not load now; fix it first: %w", err)
		}
		lines = strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
		if len(raw) == 0 {
			lines = nil
		}
	case errors.Is(err, fs.ErrNotExist):
		fi, err := d.Stat()
		if err != nil {
			return fmt.Errorf("users file %s: %w", path, err)
		}
		gid = int(fi.Sys().(*syscall.Stat_t).Gid)
	default:
		return fmt.Errorf("users file %s: %w", path, err)
	}

	lines, err = edit(lines)
	if err != nil {
		return err
	}
	content := strings.Join(lines, "\n")
	if len(lines) > 0 {
		content += "\n"
	}
	if _, err := usersfile.Parse(strings.NewReader(content), path); err != nil {
		return fmt.Errorf("the new users file would not load, nothing written: %w", err)
	}
	return replaceFile(path, []byte(content), mode, uid, gid)
}

// replaceFile writes data to a temporary file beside path with the given
// mode and ownership (-1 keeps the process's), syncs it and renames it over
// path, then syncs the directory so the rename survives a crash.
func replaceFile(path string, data []byte, mode fs.FileMode, uid, gid int) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err != nil {
		return fmt.Errorf("users file %s: %w", path, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// Mode and owner before the content: the hashes are never readable
	// by more than the final file allows.
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("users file %s: %w", path, err)
	}
	if uid != -1 || gid != -1 {
		if err := tmp.Chown(uid, gid); err != nil {
			return fmt.Errorf("users file %s: keeping its owner and group: %w", path, err)
		}
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("users file %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("users file %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("users file %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("users file %s: %w", path, err)
	}
	done = true
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// usersLineLogin returns the login of a users-file line, or "" for a blank
// or comment line, split as the server splits it (usersfile.ParseLine).
func usersLineLogin(line string) string {
	l, _ := usersfile.ParseLine(line) // a blank or comment line: Login ""
	return l.Login
}

// sameLogin compares logins as the users file does (usersfile.FoldLogin),
// which strings.EqualFold does not match for every rune.
func sameLogin(a, b string) bool { return usersfile.FoldLogin(a) == usersfile.FoldLogin(b) }
