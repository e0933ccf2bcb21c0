package usersfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/postern/postern/auth"
)

// Cheap hashes (bcrypt cost 4, SHA-crypt 1000/5000 rounds) keep the tests
// fast; the passwords are the login plus "-pw".
const (
	hashAlice = vecBcryptCost4                                                 // alice-pw
	hashBob   = "$2y$04$R4lMYhwaMeQPDv3jRYH8n..WrGdRcyxzi.SKfUjj4fsPCUeFgeQ.2" // bob-pw
	hashCarol = "$2y$04$hhyM4hcATuARR6aIVuppUutUtW3js2eygEz1jLHJ7fdphe3jT21xC" // carol-pw
	hashDave  = "$6$rounds=1000$daveSALT$Xz42D16K4HHlYHoTovH1m/nZ2MoJMVksNQFE.8Hn/U0F/2YK1MIVkSfeS6I9xTcTDa7w4ulRFQLNjZx652V2H."
	hashEve   = "$5$eveSALT$kIEq4nDKCK/SRJNh83kTrd3kSMU5dJHl3BqnkLL3.P7"
)

// usersFile is a file in every syntax the parser must accept.
var usersFile = strings.Join([]string{
	"# Postern users",
	"",
	"Alice@Example.org:{BLF-CRYPT}" + hashAlice,
	"   bob:" + hashBob + "   ", // htpasswd output, indented, trailing blanks
	"\t# indented comment",
	"carol:{blf-crypt}" + hashCarol + ":1000:1000:Carol C:/home/carol:/bin/false:userdb_quota_rule=*:storage=1G",
	"dave:{CRYPT}" + hashDave + "::::::",
	"eve:{SHA256-CRYPT}" + hashEve,
	"",
}, "\n")

func sortedLogins(u *Users) []string {
	var logins []string
	for _, e := range u.byLogin {
		logins = append(logins, fmt.Sprintf("%s@%d", e.login, e.line))
	}
	sort.Strings(logins)
	return logins
}

func TestParsePasswdFile(t *testing.T) {
	users, err := Parse(strings.NewReader(usersFile), "users.txt")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := []string{"Alice@Example.org@3", "bob@4", "carol@6", "dave@7", "eve@8"}
	if got := sortedLogins(users); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("logins@lines = %v, want %v", got, want)
	}
	if users.Len() != 5 {
		t.Errorf("Len = %d, want 5", users.Len())
	}
}

func TestParsePasswdFileErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  string
	}{
		{"no colon", "# c\n\nbob-pw\n", `users.txt:3: no ":" after the login (expected login:hash)`},
		{"empty login", ":" + hashBob, "users.txt:1: empty login"},
		{"login with space", "bob smith:" + hashBob, `users.txt:1: login "bob smith" contains whitespace or control characters`},
		{"login with control character", "bob\x01:" + hashBob, `users.txt:1: login "bob\x01" contains whitespace or control characters`},
		{"login not UTF-8", "b\xffb:" + hashBob, "users.txt:1: login is not valid UTF-8"},
		{"empty hash", "alice:" + hashAlice + "\nbob:\n", `users.txt:2: login "bob" has an empty password hash (password-less logins are not supported)`},
		{"empty hash with extra fields", "bob::1000:1000", `users.txt:1: login "bob" has an empty password hash (password-less logins are not supported)`},
		{"plain text password", "bob:bob-pw-secret", `users.txt:1: login "bob": unsupported or malformed password hash: not a crypt string (expected $2y$, $5$, $6$, $1$, $apr1$, $argon2id$ or 13-character DES)`},
		{"malformed md5-crypt", "bob:$1$saltsalt$qjXMvbEw8oaL.CzflDug", `users.txt:1: login "bob": unsupported or malformed password hash: MD5-crypt: hash is not 22 crypt-base64 characters`},
		{"malformed SSHA", "bob:{SSHA}AAAA", `users.txt:1: login "bob": unsupported or malformed password hash: {SSHA}: decoded length 3, want 20 digest bytes and a salt of 1..1024`},
		{"duplicate of a skipped entry", "bob:{OTP}x\nBob:" + hashBob, `users.txt:2: duplicate login "Bob" (first defined on line 1; logins are case-insensitive)`},
		{"truncated hash", "bob:" + hashBob[:40], `users.txt:1: login "bob": unsupported or malformed password hash: bcrypt: salt and hash are not 53 crypt-base64 characters`},
		{"duplicate", "alice:" + hashAlice + "\nbob:" + hashBob + "\n\nalice:" + hashCarol, `users.txt:4: duplicate login "alice" (first defined on line 1; logins are case-insensitive)`},
		{"duplicate differing in case", "alice@example.org:" + hashAlice + "\nALICE@example.ORG:" + hashBob, `users.txt:2: duplicate login "ALICE@example.ORG" (first defined on line 1; logins are case-insensitive)`},
		{"line too long", "alice:" + hashAlice + "\n" + strings.Repeat("x", maxUsersLine+1), fmt.Sprintf("users.txt:2: line longer than %d bytes", maxUsersLine)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			users, err := Parse(strings.NewReader(tc.input), "users.txt")
			if err == nil {
				t.Fatalf("Parse accepted the file (%d users); want error %q", users.Len(), tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got %q\nwant %q", err.Error(), tc.want)
			}
			for _, secret := range []string{"-pw", hashAlice[7:], hashBob[7:], hashBob[7:40], hashCarol[7:]} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains a password or hash fragment %q", err, secret)
				}
			}
		})
	}
}

func TestUsersAuthenticate(t *testing.T) {
	users, err := Parse(strings.NewReader(usersFile), "users.txt")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	tests := []struct {
		name      string
		login     string
		password  string
		wantLogin string // empty: want auth.ErrInvalidCredentials
	}{
		{"bcrypt behind {BLF-CRYPT}", "Alice@Example.org", "alice-pw", "Alice@Example.org"},
		{"login is case-insensitive, result as written", "alice@example.ORG", "alice-pw", "Alice@Example.org"},
		{"htpasswd line", "bob", "bob-pw", "bob"},
		{"upper-case login", "BOB", "bob-pw", "bob"},
		{"extra fields ignored", "carol", "carol-pw", "carol"},
		{"sha512-crypt behind {CRYPT}", "dave", "dave-pw", "dave"},
		{"sha256-crypt", "eve", "eve-pw", "eve"},
		{"wrong password", "bob", "alice-pw", ""},
		{"password case matters", "bob", "BOB-PW", ""},
		{"empty password", "bob", "", ""},
		{"unknown user", "mallory", "mallory-pw", ""},
		{"empty login", "", "bob-pw", ""},
		// The dummy for unknown logins is a real entry's hash (bob's class is
		// the most common: bcrypt cost 4, first is Alice). Its password must
		// not let an unknown login in.
		{"unknown user with the dummy's password", "mallory", "alice-pw", ""},
		{"login is not trimmed", " bob", "bob-pw", ""},
		{"password over the length limit", "bob", "bob-pw" + strings.Repeat(" ", maxPasswordLen), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := users.Authenticate(context.Background(), auth.Request{Login: tc.login, Password: tc.password})
			if tc.wantLogin == "" {
				if !errors.Is(err, auth.ErrInvalidCredentials) {
					t.Fatalf("Authenticate = %+v, %v; want ErrInvalidCredentials", res, err)
				}
				// auth.ErrUnknownLogin (for auth.Chain) is the one other value, with
				// the same text; through auth.Chain both are the exact value.
				if err != auth.ErrInvalidCredentials && err != auth.ErrUnknownLogin || err.Error() != auth.ErrInvalidCredentials.Error() { //nolint:errorlint // the exact value: no detail that could differ between the two cases
					t.Errorf("error %q is decorated; unknown user and wrong password must give the same error", err)
				}
				_, err = auth.Chain(users).Authenticate(context.Background(), auth.Request{Login: tc.login, Password: tc.password})
				if err != auth.ErrInvalidCredentials { //nolint:errorlint // the exact value, as above
					t.Errorf("through Chain: error %q; want exactly ErrInvalidCredentials", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if res.Login != tc.wantLogin {
				t.Errorf("Result.Login = %q, want %q", res.Login, tc.wantLogin)
			}
		})
	}
}

func TestUsersAuthenticateCancelled(t *testing.T) {
	users, err := Parse(strings.NewReader(usersFile), "users.txt")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = users.Authenticate(ctx, auth.Request{Login: "bob", Password: "bob-pw"})
	if !errors.Is(err, auth.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("Authenticate with a cancelled context = %v; want ErrUnavailable and context.Canceled", err)
	}
}

func TestChooseDummy(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		wantFor string // the cost class of the dummy
	}{
		{"empty file: built-in bcrypt cost 10", "# nobody yet\n", "bcrypt cost=10"},
		{"single entry", "dave:" + hashDave, "SHA512-crypt rounds=1000"},
		{"most common class wins", "dave:" + hashDave + "\neve:" + hashEve + "\nalice:" + hashAlice + "\nbob:" + hashBob, "bcrypt cost=4"},
		{"tie goes to the first class", "eve:" + hashEve + "\nalice:" + hashAlice, "SHA256-crypt rounds=5000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			users, err := Parse(strings.NewReader(tc.file), "users.txt")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if users.dummy.costClass != tc.wantFor {
				t.Errorf("dummy cost class = %q, want %q", users.dummy.costClass, tc.wantFor)
			}
		})
	}
}

func TestChooseDummyIsFirstOfItsClass(t *testing.T) {
	users, err := Parse(strings.NewReader("eve:"+hashEve+"\nalice:"+hashAlice+"\nbob:"+hashBob), "users.txt")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	// bob's hash is of the same class; only alice's accepts alice's password.
	if ok, err := users.dummy.verify("alice-pw"); !ok || err != nil {
		t.Errorf("dummy is not alice's hash, the first of the most common class (verify = %v, %v)", ok, err)
	}
}

func TestUsersEmptyFileRejectsEveryone(t *testing.T) {
	users, err := Parse(strings.NewReader(""), "empty.txt")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if _, err := users.Authenticate(context.Background(), auth.Request{Login: "root", Password: ""}); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Errorf("Authenticate on an empty file = %v, want ErrInvalidCredentials", err)
	}
}

// writeFile writes content to dir/users and returns the path.
func writeUsers(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatalf("writing %s: %v", path, err)
	}
}

func authLogin(p *File, login, password string) error {
	_, err := p.Authenticate(context.Background(), auth.Request{Login: login, Password: password})
	return err
}

// TestPasswdFileRealTools writes a users file from the real tools' output
// (doveadm pw, htpasswd -B) and authenticates through Open.
func TestPasswdFileRealTools(t *testing.T) {
	hashes := realToolHashes(t, "secret")
	var file strings.Builder
	logins := map[string]string{}
	i := 0
	for name, hash := range hashes {
		i++
		login := fmt.Sprintf("user%d@example.org", i)
		logins[name] = login
		if strings.HasPrefix(name, "htpasswd") {
			fmt.Fprintf(&file, "%s:%s\n", login, hash) // as htpasswd -nb prints it
		} else {
			fmt.Fprintf(&file, "# %s\n%s:%s::::::\n", name, login, hash)
		}
	}
	path := filepath.Join(t.TempDir(), "users")
	writeUsers(t, path, file.String())
	p, err := Open(path, nil)
	if err != nil {
		t.Fatalf("Open: %v\n%s", err, file.String())
	}
	for name, login := range logins {
		t.Run(name, func(t *testing.T) {
			res, err := p.Authenticate(context.Background(), auth.Request{Login: login, Password: "secret"})
			if err != nil || res.Login != login {
				t.Errorf("right password: %+v, %v; want Login %q", res, err, login)
			}
			if err := authLogin(p, login, "secreT"); !errors.Is(err, auth.ErrInvalidCredentials) {
				t.Errorf("wrong password: %v, want ErrInvalidCredentials", err)
			}
		})
	}
	t.Run("unknown user", func(t *testing.T) {
		if err := authLogin(p, "nobody@example.org", "secret"); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Errorf("unknown user: %v, want ErrInvalidCredentials", err)
		}
	})
}

func TestPasswdFileReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	writeUsers(t, path, "alice:"+hashAlice+"\n")
	var logs bytes.Buffer
	p, err := Open(path, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := authLogin(p, "alice", "alice-pw"); err != nil {
		t.Fatalf("alice before reload: %v", err)
	}

	t.Run("good file replaces the users", func(t *testing.T) {
		writeUsers(t, path, "bob:"+hashBob+"\n")
		if err := p.Reload(); err != nil {
			t.Fatalf("Reload: %v", err)
		}
		if err := authLogin(p, "bob", "bob-pw"); err != nil {
			t.Errorf("bob after reload: %v", err)
		}
		if err := authLogin(p, "alice", "alice-pw"); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Errorf("alice after reload: %v, want ErrInvalidCredentials", err)
		}
	})

	t.Run("broken file keeps the old users", func(t *testing.T) {
		logs.Reset()
		writeUsers(t, path, "carol:"+hashCarol+"\nbob:{SHA256}bob-pw\n")
		err := p.Reload()
		want := fmt.Sprintf(`loading users file: %s:2: login "bob": unsupported or malformed password hash: {SHA256}: payload is not base64`, path)
		if err == nil || err.Error() != want {
			t.Fatalf("Reload error\n got %v\nwant %s", err, want)
		}
		if err := authLogin(p, "bob", "bob-pw"); err != nil {
			t.Errorf("bob after a failed reload: %v", err)
		}
		if err := authLogin(p, "carol", "carol-pw"); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Errorf("carol after a failed reload: %v, want ErrInvalidCredentials", err)
		}
		line := logs.String()
		if !strings.Contains(line, "level=ERROR") || !strings.Contains(line, "keeping the previous users") || !strings.Contains(line, ":2: ") {
			t.Errorf("failed reload log line = %q; want an ERROR naming the line", line)
		}
		if strings.Contains(line, "bob-pw") || strings.Contains(line, hashCarol[7:]) {
			t.Errorf("log line leaks a password or hash: %q", line)
		}
	})

	t.Run("missing file keeps the old users", func(t *testing.T) {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if err := p.Reload(); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Reload of a missing file = %v, want fs.ErrNotExist", err)
		}
		if err := authLogin(p, "bob", "bob-pw"); err != nil {
			t.Errorf("bob after a failed reload: %v", err)
		}
	})
}

func TestOpenPasswdFileErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "missing"), nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing) = %v, want fs.ErrNotExist", err)
	}
	path := filepath.Join(dir, "users")
	writeUsers(t, path, "alice:"+hashAlice+"\nalice:"+hashBob+"\n")
	want := fmt.Sprintf(`loading users file: %s:2: duplicate login "alice" (first defined on line 1; logins are case-insensitive)`, path)
	if _, err := Open(path, nil); err == nil || err.Error() != want {
		t.Errorf("Open(duplicate)\n got %v\nwant %s", err, want)
	}
}

func TestOpenPasswdFileWarnsWorldReadable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	writeUsers(t, path, "alice:"+hashAlice+"\n")
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	if _, err := Open(path, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "world-readable") {
		t.Errorf("no world-readable warning in %q", logs.String())
	}
}

// TestPasswdFileConcurrentReload runs logins while the file is reloaded; with
// -race it proves the table swap is safe. Every login must see either the old
// or the new table, never a mix or an error other than invalid credentials.
func TestPasswdFileConcurrentReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	both := "alice:" + hashAlice + "\nbob:" + hashBob + "\n"
	onlyAlice := "alice:" + hashAlice + "\n"
	writeUsers(t, path, both)
	p, err := Open(path, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 4 {
		wg.Go(func() {
			for range 20 {
				if err := authLogin(p, "alice", "alice-pw"); err != nil {
					errs <- fmt.Errorf("alice: %w", err)
				}
				if err := authLogin(p, "bob", "bob-pw"); err != nil && !errors.Is(err, auth.ErrInvalidCredentials) {
					errs <- fmt.Errorf("bob: %w", err)
				}
			}
		})
	}
	for i := range 20 {
		content := both
		if i%2 == 0 {
			content = onlyAlice
		}
		writeUsers(t, path, content)
		if err := p.Reload(); err != nil {
			t.Errorf("Reload: %v", err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// FuzzParsePasswdFile: the parser must never panic, and a table it returns
// has at most one user per line.
func FuzzParsePasswdFile(f *testing.F) {
	f.Add([]byte(usersFile))
	f.Add([]byte("alice:" + hashAlice + "\nALICE:" + hashBob + "\n"))
	f.Add([]byte("# comment\n\n  \t\nbob:{PLAIN}x\n"))
	f.Add([]byte("bob::::\n:x\nno-colon\n"))
	f.Add([]byte("u:{ARGON2ID}" + vecArgon2id + ":1:2:3\r\nv:$6$rounds=5000$s$" + strings.Repeat("a", 86) + "\n"))
	f.Add([]byte("\xff\xfe:\x00\n"))
	f.Add([]byte("a:{OTP}x\nb:$y$j9T$abc\nc:{SSHA.hex}29d887ba614e7ad7b3d561ce64728680ef1c4842f8d5cde9\nd:IkbYax4BY4ikc\nA:{PLAIN}dup\n"))
	f.Add([]byte("u@example.org:{DIGEST-MD5}543e1aec5d3614f03141652d6ada51b2\nv:{CRAM-MD5}cd3ba7deaad6e5ca23448ba42e379747a9e0f7f1fbc00c8a81bbaac395731b56\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		users, err := Parse(bytes.NewReader(data), "fuzz")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz:") && !strings.HasPrefix(err.Error(), "reading users file fuzz:") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if lines := bytes.Count(data, []byte("\n")) + 1; users.Len() > lines {
			t.Fatalf("%d users from %d lines", users.Len(), lines)
		}
		if users.dummy.check == nil {
			t.Fatalf("no dummy hash")
		}
		if len(users.weak) > users.Len() {
			t.Fatalf("%d weak entries among %d users", len(users.weak), users.Len())
		}
		for _, s := range users.Skipped() {
			if _, loaded := users.byLogin[FoldLogin(s.Login)]; loaded || !errors.Is(s.Reason, ErrUnknownScheme) {
				t.Fatalf("skipped entry %q is loaded too, or skipped for %v", s.Login, s.Reason)
			}
		}
	})
}

// The two benchmarks below run on the same bcrypt cost-10 file; compare their
// ns/op (e.g. with benchstat over -count 10): an unknown login must cost what
// a wrong password costs.
func benchmarkUsers(b *testing.B) *Users {
	b.Helper()
	var file strings.Builder
	for _, login := range []string{"alice", "bob", "carol"} {
		hash, err := HashPassword(login+"-pw", "BLF-CRYPT")
		if err != nil {
			b.Fatalf("HashPassword: %v", err)
		}
		fmt.Fprintf(&file, "%s:%s\n", login, hash)
	}
	users, err := Parse(strings.NewReader(file.String()), "bench")
	if err != nil {
		b.Fatalf("Parse: %v", err)
	}
	return users
}

func BenchmarkAuthWrongPassword(b *testing.B) {
	users := benchmarkUsers(b)
	ctx := context.Background()
	req := auth.Request{Login: "bob", Password: "not-bobs-pw"}
	for b.Loop() {
		if _, err := users.Authenticate(ctx, req); !errors.Is(err, auth.ErrInvalidCredentials) {
			b.Fatalf("Authenticate = %v", err)
		}
	}
}

func BenchmarkAuthUnknownUser(b *testing.B) {
	users := benchmarkUsers(b)
	ctx := context.Background()
	req := auth.Request{Login: "mallory", Password: "not-bobs-pw"}
	for b.Loop() {
		if _, err := users.Authenticate(ctx, req); !errors.Is(err, auth.ErrInvalidCredentials) {
			b.Fatalf("Authenticate = %v", err)
		}
	}
}

// TestPasswdFileSkipsUnknownSchemes: an entry in a scheme Postern does not
// verify is left out with a warning naming login and scheme (that login then
// fails like an unknown one); the rest of the file loads. Weak entries load
// with one warning each, and are counted by scheme; no hash is ever logged.
func TestPasswdFileSkipsUnknownSchemes(t *testing.T) {
	const (
		otpHash  = "{OTP}md5 1234 seed1 0123456789abcdef"
		yescrypt = "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o7yNx1qVJ0Xz1"
	)
	path := filepath.Join(t.TempDir(), "users")
	writeUsers(t, path, strings.Join([]string{
		"alice:" + hashAlice,
		"otp:" + otpHash,
		"yes:" + yescrypt,
		"typo:{BLF-CRYPTT}" + hashBob,
		"plain:{PLAIN}plain-pw",
		"ssha:{SSHA}NbBOpUqGCJag61OgyKOx+XZ+n4t5uX+O", // secret
		"des:IkbYax4BY4ikc",                           // secret
		"apr:$apr1$pTJUjx2O$57qT1oAPOgW7E7lvUSEG./",   // secret
		"sha:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=",       // secret
		"",
	}, "\n"))
	var logs bytes.Buffer
	p, err := Open(path, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	for login, password := range map[string]string{"alice": "alice-pw", "plain": "plain-pw", "ssha": "secret", "des": "secret", "apr": "secret", "sha": "secret"} {
		if err := authLogin(p, login, password); err != nil {
			t.Errorf("%s: %v", login, err)
		}
	}
	for _, login := range []string{"otp", "yes", "typo"} {
		if err := authLogin(p, login, "secret"); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Errorf("skipped %s: %v, want ErrInvalidCredentials", login, err)
		}
	}
	if got := p.SkippedEntries(); got != 3 {
		t.Errorf("SkippedEntries = %d, want 3", got)
	}
	wantWeak := map[string]int{"PLAIN": 1, "SSHA": 1, "DES-CRYPT": 1, "APR1-MD5": 1, "SHA": 1}
	if got := p.WeakHashes(); fmt.Sprint(got) != fmt.Sprint(wantWeak) {
		t.Errorf("WeakHashes = %v, want %v", got, wantWeak)
	}
	log := logs.String()
	for _, want := range []string{"login=otp", "login=yes", "login=typo", "{OTP}", "$y$", "{BLF-CRYPTT}"} {
		if c := strings.Count(log, want); c != 1 {
			t.Errorf("%q appears %d times in the log, want once:\n%s", want, c, log)
		}
	}
	for _, e := range []struct{ login, scheme string }{{"plain", "PLAIN"}, {"ssha", "SSHA"}, {"des", "DES-CRYPT"}, {"apr", "APR1-MD5"}, {"sha", "SHA"}} {
		line := "login=" + e.login + " scheme=" + e.scheme
		if c := strings.Count(log, line); c != 1 {
			t.Errorf("weak warning %q appears %d times, want once:\n%s", line, c, log)
		}
	}
	if strings.Contains(log, "login=alice ") {
		t.Errorf("the bcrypt entry was warned about:\n%s", log)
	}
	for _, secret := range []string{"plain-pw", "NbBOpUqGCJag61", "IkbYax4BY4ikc", "pTJUjx2O", "5en6G6Mez", "0123456789abcdef", "F5Jx5fExrKuP", hashBob[7:]} {
		if strings.Contains(log, secret) {
			t.Errorf("the log contains hash or password fragment %q:\n%s", secret, log)
		}
	}
	// A reload logs the warnings again (once per entry per load) and keeps counting.
	logs.Reset()
	writeUsers(t, path, "alice:"+hashAlice+"\nplain:{PLAIN}plain-pw\n")
	if err := p.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := p.WeakHashes(); fmt.Sprint(got) != "map[PLAIN:1]" || p.SkippedEntries() != 0 {
		t.Errorf("after reload WeakHashes = %v, skipped %d; want map[PLAIN:1], 0", got, p.SkippedEntries())
	}
	if c := strings.Count(logs.String(), "weak password hash"); c != 1 {
		t.Errorf("%d weak warnings after reload, want 1:\n%s", c, logs.String())
	}
}

// TestChainUsersFileThenDown: the users file in front of a backend that is
// down (issue 18 item 4). A wrong password for a login of the file is a
// rejected guess even though the later backend could not answer; a login
// the file does not hold is only unavailable (it may live in the backend
// that is down); the right password of a file login still gets in.
func TestChainUsersFileThenDown(t *testing.T) {
	users, err := Parse(strings.NewReader("alice:{PLAIN}right\n"), "users")
	if err != nil {
		t.Fatal(err)
	}
	down := downAuth{}
	c := auth.Chain(users, down)
	for _, tc := range []struct {
		login, password string
		want            error
	}{
		{"alice", "wrong", auth.ErrRejectedWhileUnavailable},
		{"ALICE", "wrong", auth.ErrRejectedWhileUnavailable},
		{"alice", strings.Repeat("x", maxPasswordLen+1), auth.ErrRejectedWhileUnavailable},
		{"bob", "anything", auth.ErrUnavailable},
		{"bob", strings.Repeat("x", maxPasswordLen+1), auth.ErrUnavailable},
	} {
		_, err := c.Authenticate(context.Background(), auth.Request{Login: tc.login, Password: tc.password})
		if !errors.Is(err, tc.want) || tc.want == auth.ErrUnavailable && errors.Is(err, auth.ErrInvalidCredentials) {
			t.Errorf("%s: got %v, want %v", tc.login, err, tc.want)
		}
	}
	if res, err := c.Authenticate(context.Background(), auth.Request{Login: "alice", Password: "right"}); err != nil || res.Login != "alice" {
		t.Fatalf("right password: %+v, %v", res, err)
	}
}

// downAuth is a backend that cannot answer.
type downAuth struct{}

func (downAuth) Authenticate(context.Context, auth.Request) (auth.Result, error) {
	return auth.Result{}, fmt.Errorf("ldap: %w", auth.ErrUnavailable)
}

// FuzzParseLine: a line ParseLine splits is its fields joined again (the
// whitespace around it aside), the login never holds a ':', and a line it
// passes over is blank or a comment. `postern user` edits the file with
// it, so a split that lost or moved a byte would rewrite someone's line.
func FuzzParseLine(f *testing.F) {
	for _, seed := range []string{"alice:{PLAIN}x", "  bob:$2y$10$abc:1000:1000::/home/bob:/bin/sh\r", "# comment", "", "   ", "nocolon", "a::", ":x", "c:h:"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		l, ok := ParseLine(line)
		trimmed := strings.TrimSpace(line)
		if !ok {
			if trimmed != "" && !strings.HasPrefix(trimmed, "#") {
				t.Fatalf("ParseLine(%q) passed over a line that is neither blank nor a comment", line)
			}
			return
		}
		joined := l.Login
		if l.HasHash {
			joined += ":" + l.Hash
		}
		if l.HasRest {
			joined += ":" + l.Rest
		}
		if joined != trimmed || strings.Contains(l.Login, ":") || strings.Contains(l.Hash, ":") || l.HasRest && !l.HasHash {
			t.Fatalf("ParseLine(%q) = %+v: does not join to the line", line, l)
		}
	})
}
