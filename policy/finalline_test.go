package policy

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestTerminateLastLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"From: a@x\r\n", "From: a@x\r\n"},
		{"From: a@x\r\nSubject: x\r\nFrom: ceo@bank.test", "From: a@x\r\nSubject: x\r\nFrom: ceo@bank.test\r\n"},
		{"Subject: x\r\n\r\nbody", "Subject: x\r\n\r\nbody\r\n"},
		{"body\n", "body\n"},         // bare LF: the copier's to judge, not changed
		{"body\r", "body\r\r\n"},     // a lone CR stays a bare CR
		{"body\x00", "body\x00\r\n"}, // a NUL is a byte like any other here
		{"\r\n.\r\n", "\r\n.\r\n"},   // already ended
		{"x", "x\r\n"},
	} {
		// One byte per Read as well: the end is found however r splits.
		for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
			got, err := io.ReadAll(TerminateLastLine(r))
			if err != nil || string(got) != tc.want {
				t.Errorf("%q: got %q, %v; want %q", tc.in, got, err, tc.want)
			}
		}
	}
}

// An abandoned BDAT transfer ends its reader with an error, not EOF: the
// message must stay unfinished, no line ending added, the error passed on.
func TestTerminateLastLineKeepsErrors(t *testing.T) {
	boom := errors.New("transfer abandoned")
	r := TerminateLastLine(io.MultiReader(strings.NewReader("From: a@x"), iotest.ErrReader(boom)))
	got, err := io.ReadAll(r)
	if !errors.Is(err, boom) || string(got) != "From: a@x" {
		t.Fatalf("got %q, %v; want %q and the transfer's error", got, err, "From: a@x")
	}
}
