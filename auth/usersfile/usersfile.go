// Package usersfile is the users-file backend: a Dovecot passwd-file
// compatible table of logins and password hashes (Parse, ParseLine,
// FoldLogin), loaded from a path and reloaded atomically (File), and the
// hash schemes it verifies and writes (VerifyPassword, HashPassword; the
// hash_*.go files), with VerifySlots bounding the verifications at once.
// `postern user` edits the file with ParseLine and FoldLogin, so that the
// editor and the server read a line the same way.
//
// It implements auth.Authenticator and imports auth for its types; it must
// never import the other backends (auth/dovecot, auth/ldap), proxy, limits,
// policy or anything under cmd.
package usersfile

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/postern/postern/auth"
)

// emptyFileDummyHash is verified for every login when the users file has no
// entries, so that an empty table still costs one bcrypt cost-10 check per
// attempt. Its password was random and discarded.
const emptyFileDummyHash = "$2y$10$6gjBB9Vnkeh1NtxPiMMkl.k/.Fhxx5Ozh/g9pLyRQYK95gL2q2Fba"

// userEntry is one line of a users file.
type userEntry struct {
	login string // as written in the file
	line  int
	hash  parsedHash
}

// SkippedEntry is a users file line whose hash is in a scheme Postern does
// not verify: its login is left out of the table (so it fails to log in)
// and the rest of the file loads. Reason names the scheme, never the hash.
type SkippedEntry struct {
	Line   int
	Login  string
	Reason error
}

// Users is a parsed users file: an immutable login table. It implements
// auth.Authenticator and is safe for concurrent use.
type Users struct {
	name    string
	byLogin map[string]*userEntry // keyed by FoldLogin(login)
	// dummy is verified when the login is unknown, so that an unknown user
	// costs the same time as a wrong password (see chooseDummy).
	dummy parsedHash
	// weak lists the entries whose hash is weak (parsedHash.weak), in file
	// order; skipped the entries left out for an unknown scheme.
	weak    []*userEntry
	skipped []SkippedEntry
}

// Len returns the number of users.
func (u *Users) Len() int { return len(u.byLogin) }

// WeakHashes counts the users whose hash is weak, by scheme.
func (u *Users) WeakHashes() map[string]int {
	count := map[string]int{}
	for _, e := range u.weak {
		count[e.hash.scheme]++
	}
	return count
}

// Skipped returns the entries left out because of their scheme.
func (u *Users) Skipped() []SkippedEntry { return u.skipped }

// FoldLogin maps logins that mail admins consider equal to one key:
// User@Example.org and user@example.org are the same login. The table is
// keyed by it, and `postern user` compares logins with it.
func FoldLogin(login string) string { return strings.ToLower(login) }

// Line is one line of a users file split into its fields, as Parse splits
// it: "login:hash[:rest]".
type Line struct {
	// Login is the text before the first ':', or the whole line when it has
	// none (HasHash false; Parse refuses such a line).
	Login string
	// HasHash says that a ':' follows the login; Hash is the field after it
	// (empty when the line ends there or the next ':' follows at once).
	HasHash bool
	Hash    string
	// HasRest says that a ':' follows the hash; Rest is everything after it
	// (uid:gid:gecos:home:shell:extra fields), which Parse ignores.
	HasRest bool
	Rest    string
}

// ParseLine splits one line of a users file. Whitespace around the line
// is trimmed; a blank line or a comment (starting with '#') gives ok false.
// It checks nothing: Parse validates the login and the hash.
func ParseLine(line string) (l Line, ok bool) {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return Line{}, false
	}
	var rest string
	l.Login, rest, l.HasHash = strings.Cut(line, ":")
	l.Hash, l.Rest, l.HasRest = strings.Cut(rest, ":")
	return l, true
}

// Parse reads a Dovecot passwd-file compatible users file:
//
//	login:hash[:uid:gid:gecos:home:shell:extra fields...]
//
// Fields after the hash are ignored; blank lines and lines starting with '#'
// are skipped; whitespace around a line is trimmed. name is used in error
// messages ("users.txt:3: ..."), which never contain a hash or password.
// Every hash is validated here, so a malformed one fails the load, not a
// login: a damaged line, a clear password where the hash belongs, or a cost
// beyond the bounds is a mistake to fix, and on reload the previous table
// (where that user still works) stays. A hash in a scheme Postern does not
// verify at all (ErrUnknownScheme: {OTP}, yescrypt, an unknown {NAME}) is
// different: another tool wrote it on purpose, and refusing the file would
// lock out every user for one entry. That entry is listed in Skipped (its
// login fails like an unknown one) and the rest of the file loads.
func Parse(r io.Reader, name string) (*Users, error) {
	users := &Users{name: name, byLogin: map[string]*userEntry{}}
	var order []*userEntry
	skippedLine := map[string]int{} // FoldLogin(login) of skipped entries -> line
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 0, 4096), maxUsersLine)
	lineNo := 0
	for scanner.Scan() {
		lineNo++
		line, ok := ParseLine(scanner.Text())
		if !ok {
			continue
		}
		entry, err := parseUsersLine(line)
		if err != nil && !errors.Is(err, ErrUnknownScheme) {
			return nil, fmt.Errorf("%s:%d: %w", name, lineNo, err)
		}
		key := FoldLogin(entry.login)
		first, dup := skippedLine[key]
		if e, ok := users.byLogin[key]; ok {
			first, dup = e.line, true
		}
		if dup {
			return nil, fmt.Errorf("%s:%d: duplicate login %q (first defined on line %d; logins are case-insensitive)",
				name, lineNo, entry.login, first)
		}
		if err != nil {
			users.skipped = append(users.skipped, SkippedEntry{Line: lineNo, Login: entry.login, Reason: err})
			skippedLine[key] = lineNo
			continue
		}
		entry.line = lineNo
		users.byLogin[key] = entry
		order = append(order, entry)
		if entry.hash.weak {
			users.weak = append(users.weak, entry)
		}
	}
	if err := scanner.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%s:%d: line longer than %d bytes", name, lineNo+1, maxUsersLine)
		}
		return nil, fmt.Errorf("reading users file %s: %w", name, err)
	}
	dummy, err := chooseDummy(order)
	if err != nil {
		return nil, err
	}
	users.dummy = dummy
	return users, nil
}

// parseUsersLine checks one non-comment line "login:hash[:ignored...]". For
// a hash in an unknown scheme it returns the entry (login only) along with
// an error wrapping ErrUnknownScheme.
func parseUsersLine(line Line) (*userEntry, error) {
	if !line.HasHash {
		// Say nothing about the content: it may be a bare password.
		return nil, errors.New(`no ":" after the login (expected login:hash)`)
	}
	login, hash := line.Login, line.Hash
	if err := checkLogin(login); err != nil {
		return nil, err
	}
	if hash == "" {
		return nil, fmt.Errorf("login %q has an empty password hash (password-less logins are not supported)", login)
	}
	parsed, err := parseHashFor(hash, login)
	if errors.Is(err, ErrUnknownScheme) {
		return &userEntry{login: login}, fmt.Errorf("login %q: %w", login, err)
	}
	if err != nil {
		return nil, fmt.Errorf("login %q: %w", login, err)
	}
	return &userEntry{login: login, hash: parsed}, nil
}

// checkLogin rejects logins that no SMTP client could send as typed: empty,
// invalid UTF-8, or containing spaces or control characters (usually a
// stray edit in the file).
func checkLogin(login string) error {
	switch {
	case login == "":
		return errors.New("empty login")
	case !utf8.ValidString(login):
		return errors.New("login is not valid UTF-8")
	case strings.ContainsFunc(login, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return fmt.Errorf("login %q contains whitespace or control characters", login)
	}
	return nil
}

// chooseDummy picks the hash that unknown logins are verified against.
//
// An unknown login must cost what a known login with a wrong password costs,
// or response time tells an attacker which logins exist. So the dummy is a
// real entry's own hash: same algorithm, same parameters, same time by
// construction, with nothing to calibrate. Entries may differ in cost (a file
// migrating from SHA512-crypt to bcrypt), so it is taken from the most common
// cost class, making an unknown login look like the typical user; ties go to
// the class that appears first. Authenticate discards the result of a dummy
// verification, so a password that happens to match it grants nothing.
func chooseDummy(entries []*userEntry) (parsedHash, error) {
	if len(entries) == 0 {
		dummy, err := parseHash(emptyFileDummyHash)
		if err != nil {
			return parsedHash{}, fmt.Errorf("parsing the built-in dummy hash: %w", err)
		}
		return dummy, nil
	}
	count := map[string]int{}
	for _, e := range entries {
		count[e.hash.costClass]++
	}
	// Counts are final, so the first entry of the winning class is where
	// best switches to it; the strict > keeps the earlier class on a tie.
	best := entries[0]
	for _, e := range entries {
		if count[e.hash.costClass] > count[best.hash.costClass] {
			best = e
		}
	}
	return best.hash, nil
}

// Authenticate checks req against the table. Unknown login and wrong password
// both cost one verification of comparable cost and both return
// auth.ErrInvalidCredentials. A cancelled ctx gives an error wrapping
// auth.ErrUnavailable and ctx.Err(), without hashing.
func (u *Users) Authenticate(ctx context.Context, req auth.Request) (auth.Result, error) {
	return u.authenticate(ctx, req, nil)
}

// authenticate is Authenticate with every verification, the dummy one for
// an unknown login included, taking its turn in slots: both wait in the same
// queue, so the wait tells nothing about which logins exist.
func (u *Users) authenticate(ctx context.Context, req auth.Request, slots *VerifySlots) (auth.Result, error) {
	if err := ctx.Err(); err != nil {
		return auth.Result{}, fmt.Errorf("%w: %w", auth.ErrUnavailable, err)
	}
	entry, known := u.byLogin[FoldLogin(req.Login)]
	if len(req.Password) > maxPasswordLen {
		if !known {
			return auth.Result{}, auth.ErrUnknownLogin
		}
		return auth.Result{}, auth.ErrInvalidCredentials
	}
	hash := u.dummy
	if known {
		hash = entry.hash
	}
	release, err := slots.acquire(ctx)
	if err != nil {
		return auth.Result{}, fmt.Errorf("users file %s: %w", u.name, err)
	}
	ok, err := hash.verify(req.Password)
	release()
	if err != nil {
		return auth.Result{}, fmt.Errorf("%w: users file %s: %w", auth.ErrUnavailable, u.name, err)
	}
	if !known {
		return auth.Result{}, auth.ErrUnknownLogin
	}
	if !ok {
		return auth.Result{}, auth.ErrInvalidCredentials
	}
	return auth.Result{Login: entry.login, Backend: "file"}, nil
}

// File is the users-file backend: a Users table loaded from a path and
// replaced atomically by Reload. It is safe for concurrent use.
type File struct {
	path  string
	log   *slog.Logger
	users atomic.Pointer[Users]
	// slots bounds the verifications in progress across reloads (nil: no
	// bound).
	slots *VerifySlots
	// reloadMu serialises reloads, so that two overlapping SIGHUPs cannot
	// store an older table after a newer one.
	reloadMu sync.Mutex
}

// Open loads the users file at path, with no bound on verifications at
// once. log may be nil.
func Open(path string, log *slog.Logger) (*File, error) {
	return OpenSlots(path, log, nil)
}

// OpenSlots is Open with every verification taking its turn in slots
// (nil: no bound).
func OpenSlots(path string, log *slog.Logger, slots *VerifySlots) (*File, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &File{path: path, log: log, slots: slots}
	users, err := p.load()
	if err != nil {
		return nil, err
	}
	p.users.Store(users)
	p.log.Info("users file loaded", "path", path, "users", users.Len())
	return p, nil
}

// Reload reads the file again. On success the new table replaces the old one
// for all later Authenticate calls; on failure the old table stays in use,
// the reason is logged and returned.
func (p *File) Reload() error {
	p.reloadMu.Lock()
	defer p.reloadMu.Unlock()
	users, err := p.load()
	if err != nil {
		p.log.Error("users file reload failed; keeping the previous users", "path", p.path,
			"users", p.users.Load().Len(), "err", err)
		return err
	}
	p.users.Store(users)
	p.log.Info("users file reloaded", "path", p.path, "users", users.Len())
	return nil
}

// WeakHashes counts the current table's weak hashes by scheme (for the
// postern_users_weak_hashes gauge).
func (p *File) WeakHashes() map[string]int { return p.users.Load().WeakHashes() }

// VerificationsWaiting is the number of logins queued for a verification
// slot now (for the postern_auth_verifications_waiting gauge).
func (p *File) VerificationsWaiting() int64 { return p.slots.Waiting() }

// SkippedEntries is the number of entries the current table left out.
func (p *File) SkippedEntries() int { return len(p.users.Load().Skipped()) }

// Authenticate implements auth.Authenticator with the current table.
func (p *File) Authenticate(ctx context.Context, req auth.Request) (auth.Result, error) {
	return p.users.Load().authenticate(ctx, req, p.slots)
}

func (p *File) load() (*Users, error) {
	f, err := os.Open(p.path)
	if err != nil {
		return nil, fmt.Errorf("opening users file: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().Perm()&0o004 != 0 {
		p.log.Warn("users file is world-readable; password hashes can be attacked offline", "path", p.path)
	}
	users, err := Parse(f, p.path)
	if err != nil {
		return nil, fmt.Errorf("loading users file: %w", err)
	}
	for _, s := range users.skipped {
		p.log.Warn("users file entry skipped: its password scheme is not verified, so this login cannot authenticate",
			"path", p.path, "line", s.Line, "login", s.Login, "err", s.Reason)
	}
	// One line per entry, naming the login and scheme (never the hash), so
	// the admin knows whom to ask for a new password.
	for _, e := range users.weak {
		p.log.Warn("users file entry has a weak password hash; rehash it with `postern hash-password`",
			"path", p.path, "line", e.line, "login", e.login, "scheme", e.hash.scheme)
	}
	return users, nil
}
