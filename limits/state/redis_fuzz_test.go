package state

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzRedisURL feeds --state values to NewRedis (which does not connect):
// it never panics, refuses every URL carrying a password, and never repeats
// a password in its error.
func FuzzRedisURL(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		r, err := NewRedis(RedisConfig{URL: s})
		if err == nil {
			defer r.Close()
		}
		u, perr := url.Parse(s)
		if perr != nil {
			if err == nil {
				t.Fatalf("%q: url.Parse fails (%v) but NewRedis accepted it", s, perr)
			}
			return
		}
		pw, has := u.User.Password()
		if has && err == nil {
			t.Fatalf("%q: a URL with a password was accepted", s)
		}
		if has && len(pw) >= 4 && err != nil && strings.Contains(err.Error(), pw) {
			t.Fatalf("%q: the error repeats the password: %v", s, err)
		}
	})
}
