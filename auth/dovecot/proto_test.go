package dovecot

import (
	"bufio"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestDovecotTabEscape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"a\tb", "a\x01tb"},
		{"line\nbreak\r", "line\x01nbreak\x01r"},
		{"\x01", "\x011"},
		{"nul\x00", "nul\x010"},
		{`back\slash`, `back\slash`}, // backslash is not special in this protocol
	} {
		if got := dovecotTabEscape(tc.in); got != tc.want {
			t.Errorf("dovecotTabEscape(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := dovecotTabUnescape(tc.want); got != tc.in {
			t.Errorf("dovecotTabUnescape(%q) = %q, want %q", tc.want, got, tc.in)
		}
	}
	// Dovecot's unescaper: an unknown escape gives the character itself, a
	// trailing lone \001 is dropped.
	if got := dovecotTabUnescape("a\x01xb\x01"); got != "axb" {
		t.Errorf("unknown/trailing escapes: got %q, want %q", got, "axb")
	}
}

func TestParseDovecotReply(t *testing.T) {
	for _, tc := range []struct {
		line    string
		want    dovecotReply
		wantErr bool
	}{
		{line: "OK\t7\tuser=alice@example.org", want: dovecotReply{Kind: "OK", ID: 7, Params: map[string]string{"user": "alice@example.org"}}},
		{line: "FAIL\t1", want: dovecotReply{Kind: "FAIL", ID: 1, Params: map[string]string{}}},
		{line: "FAIL\t2\tuser=bob\ttemp\treason=db down", want: dovecotReply{Kind: "FAIL", ID: 2, Params: map[string]string{"user": "bob", "temp": "", "reason": "db down"}}},
		{line: "FAIL\t3\tcode=temp_fail", want: dovecotReply{Kind: "FAIL", ID: 3, Params: map[string]string{"code": "temp_fail"}}},
		{line: "OK\t4\tuser=we\x01tird", want: dovecotReply{Kind: "OK", ID: 4, Params: map[string]string{"user": "we\tird"}}},
		{line: "CONT\t5\tY2hhbGxlbmdl", want: dovecotReply{Kind: "CONT", ID: 5, Data: "Y2hhbGxlbmdl"}},
		{line: "CONT\t6", want: dovecotReply{Kind: "CONT", ID: 6}},
		{line: "OK\t4294967295", want: dovecotReply{Kind: "OK", ID: 4294967295, Params: map[string]string{}}},
		{line: "OK", wantErr: true},
		{line: "OK\t4294967296", wantErr: true},
		{line: "OK\t-1", wantErr: true},
		{line: "OK\tx", wantErr: true},
		{line: "MECH\tPLAIN", wantErr: true},
		{line: "", wantErr: true},
	} {
		got, err := parseDovecotReply(tc.line)
		if tc.wantErr {
			if err == nil {
				t.Errorf("parseDovecotReply(%q) = %+v, want an error", tc.line, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseDovecotReply(%q) = %+v, %v; want %+v", tc.line, got, err, tc.want)
		}
	}
	if r, _ := parseDovecotReply("FAIL\t1\ttemp"); !r.isTempFail() {
		t.Error("FAIL temp is not a temporary failure")
	}
	if r, _ := parseDovecotReply("FAIL\t1\tcode=temp_fail"); !r.isTempFail() {
		t.Error("FAIL code=temp_fail is not a temporary failure")
	}
	if r, _ := parseDovecotReply("FAIL\t1\tcode=authz_fail\treason=temp"); r.isTempFail() {
		t.Error("FAIL code=authz_fail is a temporary failure")
	}
}

func TestReadDovecotHandshake(t *testing.T) {
	// Dovecot 2.3.19's real handshake: MECH lines come before SPID.
	in := "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nSPID\t8826\nCUID\t1\n" +
		"COOKIE\te3c2ed8f1cc85209be6412a14916c442\nSOMETHING-NEW\tx\nDONE\nOK\t1\n"
	br := bufio.NewReader(strings.NewReader(in))
	h, err := readDovecotHandshake(br)
	if err != nil {
		t.Fatal(err)
	}
	if h.Major != 1 || h.Minor != 2 || !h.Mechs["PLAIN"] || !h.Mechs["LOGIN"] || len(h.Mechs) != 2 {
		t.Errorf("handshake = %+v", h)
	}
	if rest, _ := readDovecotLine(br); rest != "OK\t1" {
		t.Errorf("handshake read past DONE; next line %q", rest)
	}

	for name, in := range map[string]string{
		"major 2":       "VERSION\t2\t0\nDONE\n",
		"no version":    "MECH\tPLAIN\nDONE\n",
		"short version": "VERSION\t1\nDONE\n",
		"eof":           "VERSION\t1\t2\nMECH\tPLAIN\n",
	} {
		if _, err := readDovecotHandshake(bufio.NewReader(strings.NewReader(in))); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestReadDovecotLineLimit(t *testing.T) {
	long := strings.Repeat("x", dovecotMaxLine)
	br := bufio.NewReader(strings.NewReader(long + "\n" + long + "y\nnext\n"))
	if got, err := readDovecotLine(br); err != nil || got != long {
		t.Fatalf("line of exactly the limit: len %d, %v", len(got), err)
	}
	if _, err := readDovecotLine(br); !errors.Is(err, errDovecotLineTooLong) {
		t.Fatalf("over-long line: %v, want errDovecotLineTooLong", err)
	}
	if _, err := readDovecotLine(bufio.NewReader(strings.NewReader("no newline"))); !errors.Is(err, io.EOF) {
		t.Fatalf("unterminated line: %v, want EOF", err)
	}
}

func TestDovecotAuthLineRespLast(t *testing.T) {
	line := string(dovecotAuthLine(9, "PLAIN", []string{"service=smtp", "secured", "rip=192.0.2.1"}, "AGEAYg=="))
	want := "AUTH\t9\tPLAIN\tservice=smtp\tsecured\trip=192.0.2.1\tresp=AGEAYg==\n"
	if line != want {
		t.Errorf("got %q, want %q", line, want)
	}
}

// FuzzDovecotReply feeds arbitrary server output to the handshake reader and
// the reply parser: they may reject it, never panic, and an accepted reply
// round-trips its parameters through the escaper.
func FuzzDovecotReply(f *testing.F) {
	for _, s := range []string{
		"VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nSPID\t1\nCUID\t1\nCOOKIE\tab\nDONE\nOK\t1\tuser=a\n",
		"OK\t1\tuser=a\x01tb\n",
		"FAIL\t2\ttemp\treason=x\nFAIL\t3\tcode=temp_fail\n",
		"CONT\t3\tAAAA\n",
		"VERSION\t1\nDONE\n",
		"OK\t99999999999\n",
		"\x01\x01\t=\t\n",
		"FAIL\t1\t=\t==\tuser\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = readDovecotHandshake(bufio.NewReader(strings.NewReader(string(data))))
		br := bufio.NewReader(strings.NewReader(string(data)))
		for {
			line, err := readDovecotLine(br)
			if err != nil {
				break
			}
			if len(line) > dovecotMaxLine {
				t.Fatalf("line of %d bytes accepted", len(line))
			}
			r, err := parseDovecotReply(line)
			if err != nil {
				continue
			}
			_ = r.isTempFail()
			for _, v := range r.Params {
				if got := dovecotTabUnescape(dovecotTabEscape(v)); got != v {
					t.Fatalf("escape round trip of %q gave %q", v, got)
				}
				if strings.ContainsAny(dovecotTabEscape(v), "\t\n\r") {
					t.Fatalf("escaped value %q still has TAB/CR/LF", v)
				}
			}
		}
	})
}
