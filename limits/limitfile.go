package limits

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/postern/postern/policy"
)

// Rate is a sending limit, N events per sliding Window (--limit-messages
// 200/1h). The zero Rate (N 0) means no limit.
type Rate struct {
	N      int
	Window time.Duration
}

// Unlimited reports whether r sets no limit ("*").
func (r Rate) Unlimited() bool { return r.N <= 0 }

// String is the flag form: "200/1h0m0s" is written "200/1h", "*" for none.
func (r Rate) String() string {
	if r.Unlimited() {
		return "*"
	}
	return strconv.Itoa(r.N) + "/" + shortDuration(r.Window)
}

// shortDuration writes 1h for 1h0m0s and 30m for 30m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// maxRateN bounds N: the store keeps up to N event times per key (8 bytes
// each in memory).
const maxRateN = 100_000

// ParseRate parses "N/WINDOW" (200/1h, 1000/24h; WINDOW as in
// time.ParseDuration, from 1s to 31 days) or "*" for no limit.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "*" {
		return Rate{}, nil
	}
	ns, ws, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("rate %q: want N/WINDOW, e.g. 200/1h, or * for no limit", s)
	}
	n, err := strconv.Atoi(ns)
	if err != nil || n <= 0 || n > maxRateN {
		return Rate{}, fmt.Errorf("rate %q: N must be a whole number from 1 to %d", s, maxRateN)
	}
	w, err := time.ParseDuration(ws)
	if err != nil || w < time.Second || w > 31*24*time.Hour {
		return Rate{}, fmt.Errorf("rate %q: WINDOW must be a duration from 1s to 744h, e.g. 1h", s)
	}
	return Rate{N: n, Window: w}, nil
}

// LimitFile holds per-login and per-domain overrides of the sending limits
// (--limit-file), in the text style of the sender map:
//
//	# login or @domain     limits (unnamed ones keep the --limit-* default)
//	alice@example.org      messages=500/1h recipients=5000/24h
//	@example.net           messages=50/1h
//	newsletter@example.org *
//	bulk@example.org       messages=* recipients=20000/24h
//
// "*" alone lifts every limit; "messages=*" one of them. Keys are
// case-insensitive; the login itself is looked up first, then "@domain"
// of a login that is an address.
type LimitFile struct {
	entries map[string]LimitOverride
}

// LimitOverride is one entry of a limit file; a nil Rate keeps the default.
type LimitOverride struct {
	Messages   *Rate
	Recipients *Rate
}

// LoadLimitFile reads a limit file.
func LoadLimitFile(path string) (*LimitFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening limit file: %w", err)
	}
	defer f.Close()
	return ParseLimitFile(f, path)
}

// ParseLimitFile parses the text of a limit file; name is used in errors.
func ParseLimitFile(r io.Reader, name string) (*LimitFile, error) {
	lf := &LimitFile{entries: make(map[string]LimitOverride)}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if strings.ContainsRune(line, 0) {
			return nil, fmt.Errorf("%s:%d: NUL byte", name, lineNo)
		}
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		key := policy.NormalizeMapKey(fields[0])
		if err := checkLimitKey(key); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, lineNo, err)
		}
		if _, dup := lf.entries[key]; dup {
			return nil, fmt.Errorf("%s:%d: %q is listed twice", name, lineNo, key)
		}
		o, err := parseOverride(fields[1:])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %w", name, lineNo, key, err)
		}
		lf.entries[key] = o
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return lf, nil
}

func checkLimitKey(key string) error {
	if key == "@" || strings.Count(key, "@") > 1 || strings.HasSuffix(key, "@") {
		return fmt.Errorf("%q is not a login or @domain", key)
	}
	return nil
}

func parseOverride(fields []string) (LimitOverride, error) {
	var o LimitOverride
	if len(fields) == 0 {
		return o, errors.New("no limits: write messages=N/WINDOW, recipients=N/WINDOW or *")
	}
	if len(fields) == 1 && fields[0] == "*" {
		none := Rate{}
		return LimitOverride{Messages: &none, Recipients: &none}, nil
	}
	for _, f := range fields {
		if strings.HasPrefix(f, "#") {
			break
		}
		name, value, ok := strings.Cut(f, "=")
		if !ok {
			return o, fmt.Errorf("%q: want messages=N/WINDOW or recipients=N/WINDOW", f)
		}
		r, err := ParseRate(value)
		if err != nil {
			return o, err
		}
		var slot **Rate
		switch strings.ToLower(name) {
		case LimitMessages:
			slot = &o.Messages
		case LimitRecipients:
			slot = &o.Recipients
		default:
			return o, fmt.Errorf("%q: unknown limit (messages or recipients)", name)
		}
		if *slot != nil {
			return o, fmt.Errorf("%s given twice", name)
		}
		*slot = &r
	}
	return o, nil
}

// Len is the number of entries.
func (lf *LimitFile) Len() int {
	if lf == nil {
		return 0
	}
	return len(lf.entries)
}

// lookup returns the override for login: its own entry, else its domain's.
func (lf *LimitFile) lookup(login string) (LimitOverride, bool) {
	return lf.lookupKey(policy.NormalizeMapKey(login))
}

// lookupKey is lookup of a login already normalized (policy.NormalizeMapKey).
func (lf *LimitFile) lookupKey(key string) (LimitOverride, bool) {
	if lf == nil {
		return LimitOverride{}, false
	}
	if o, ok := lf.entries[key]; ok {
		return o, true
	}
	if at := strings.LastIndexByte(key, '@'); at >= 0 {
		o, ok := lf.entries[key[at:]]
		return o, ok
	}
	return LimitOverride{}, false
}
