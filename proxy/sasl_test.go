package proxy

import (
	"errors"
	"testing"
)

// TestPlainServerWithoutInitialResponse: "AUTH PLAIN" alone gets an empty
// challenge, and the next response is taken as the credentials (RFC 4954
// §4); PLAIN with an initial response needs no challenge.
func TestPlainServerWithoutInitialResponse(t *testing.T) {
	var got [3]string
	check := func(authzid, login, password string) error {
		got = [3]string{authzid, login, password}
		if password != "right" {
			return replyAuthInvalid
		}
		return nil
	}
	for _, tc := range []struct {
		name      string
		responses [][]byte
		wantErr   error
	}{
		{"initial response", [][]byte{[]byte("\x00alice\x00right")}, nil},
		{"after the empty challenge", [][]byte{nil, []byte("\x00alice\x00right")}, nil},
		{"wrong after the challenge", [][]byte{nil, []byte("\x00alice\x00wrong")}, replyAuthInvalid},
		{"empty response after the challenge", [][]byte{nil, {}}, replyAuthMalformed},
		{"no response twice", [][]byte{nil, nil}, replyAuthMalformed},
		{"two fields", [][]byte{nil, []byte("alice\x00right")}, replyAuthMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &plainServer{check: check}
			var err error
			done := false
			for i, r := range tc.responses {
				var challenge []byte
				challenge, done, err = s.Next(r)
				if err != nil {
					break
				}
				if !done && (len(challenge) != 0 || i == len(tc.responses)-1) {
					t.Fatalf("step %d: challenge %q, done %v", i, challenge, done)
				}
			}
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && !done) {
				t.Fatalf("err %v done %v, want err %v", err, done, tc.wantErr)
			}
			if tc.wantErr == nil && got != [3]string{"", "alice", "right"} {
				t.Fatalf("check got %q", got)
			}
		})
	}
}
