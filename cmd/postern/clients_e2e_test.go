package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/postern/postern/internal/testkit"
	"github.com/postern/postern/proxy/proxytest"
)

// Issue 24: every message Postfix takes from a real client, Postern takes
// too. TestClientMatrixE2E runs ten widely used SMTP clients against the
// built binary in front of the test Postfix, and checks each delivered
// message in Postfix's Maildir, decoded as a reader sees it.
//
// Each client sends on both kinds of listener (587-style STARTTLS, 465-style
// implicit TLS) with both AUTH mechanisms, and these messages: plain ASCII
// (with lines that start with dots), a UTF-8 body and subject, a 2 MiB
// attachment, LF line ends (for the clients that send them as they are), a
// 5,000-character line, and a wrong password (the client's own
// authentication error, nothing delivered). The ASCII message goes through
// all four listener and mechanism pairs of each client; every other case
// through one pair, rotated over the clients so that the matrix sends each
// case through each pair: what a message carries is independent of how the
// session started and authenticated, and one pair per case keeps the whole
// run short. The wrong password is tried once with each mechanism.
//
// The clients all send first, in parallel; then one subtest per run checks
// it, named client/case/listener/mechanism (so -run with a subtest pattern
// selects what is checked, not what is sent). The test logs a table
// (client, version, case, listener, mechanism, time, result);
// `go test -v -run TestClientMatrixE2E ./cmd/postern` shows it, and any
// failure prints it.

// matrixWorkers is how many clients send at once: enough to overlap their
// start-up and TLS handshakes with Postfix's deliveries on two CPUs.
const matrixWorkers = 6

// matrixCase is one kind of message.
type matrixCase struct {
	name       string
	subject    string
	body       string // "\n" line ends
	attachment bool
	lf         bool // sent with LF line ends, as they are
	wrongPass  bool
	allPairs   bool // through every listener and mechanism pair
}

// line5000 is a 5,000-character line, as unwrapped HTML.
var line5000 = "<p>" + strings.Repeat("0123456789", 499) + "012</p>"

var matrixCases = []matrixCase{
	{name: "ascii", subject: "Plain ASCII", allPairs: true,
		body: "Hello from the client matrix.\n.a line that starts with a dot\n..and one with two\n"},
	{name: "utf-8", subject: "Grüße aus Köln ✉ 日本語",
		body: "Grüße aus Köln, Ελληνικά, 日本語, and an emoji: 📮\n"},
	{name: "attachment 2 MiB", subject: "An attachment", attachment: true,
		body: "Two mebibytes attached.\n"},
	{name: "LF line ends", subject: "LF line ends", lf: true,
		body: "line one\nline two\n\nafter an empty line\n"},
	{name: "5,000-char line", subject: "A long line",
		body: "A 5,000-character line follows.\n" + line5000 + "\nend\n"},
	{name: "wrong password", subject: "Never delivered", wrongPass: true,
		body: "Never delivered.\n"},
}

// matrixPairs are the listener and mechanism pairs.
var matrixPairs = [][2]string{{"starttls", "PLAIN"}, {"tls", "LOGIN"}, {"starttls", "LOGIN"}, {"tls", "PLAIN"}}

// matrixRun is one message of one client, and what came of it.
type matrixRun struct {
	client  *mailClient
	version string
	c       matrixCase
	mode    string
	mech    string
	rcpt    string
	body    string // the body as sent, its marker line included
	raw     []byte // the message the test built (clients that do not compose, and LF)
	na      string // why the case does not apply to the client
	out     string // what the client printed
	err     error
	took    time.Duration // the client's run
	result  string        // the table's result column
}

func TestClientMatrixE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	// The lockout and login delay are tested elsewhere; here the wrong
	// passwords must not slow down or refuse the other runs.
	p := startPostern(t, pf.Addr, "--auth-max-failures", "1000",
		"--auth-login-delay", "1ms", "--auth-login-delay-max", "1ms")
	cheapUsersFile(t, p)
	dir := t.TempDir()
	attachment := make([]byte, 2<<20)
	rng := rand.NewChaCha8([32]byte{24})
	rng.Read(attachment)
	attachmentFile := filepath.Join(dir, "attachment.bin")
	writeFile(t, attachmentFile, string(attachment))
	ca := filepath.Join(p.Dir, "cert.pem") // self-signed: its own CA

	clients := matrixClients()
	versions, missing := clientVersions(t, clients, dir, ca)
	runs := planMatrix(clients, versions)
	start := time.Now()
	sendMatrix(t, runs, p, dir, ca, attachment, attachmentFile)
	t.Logf("the clients ran in %v", time.Since(start).Round(time.Millisecond))

	// Every message a client said it sent must be delivered; then the
	// wrong passwords' recipients have had their chance too. A message
	// missing after the wait fails its own subtest, which names it.
	sent := 0
	for _, r := range runs {
		if r.version != "" && r.na == "" && r.err == nil && !r.c.wrongPass {
			sent++
		}
	}
	msgs := pf.Messages(t)
	for deadline := time.Now().Add(2 * time.Minute); len(msgs) < sent && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		msgs = pf.Messages(t)
	}
	attachmentSum := sha256.Sum256(attachment)

	for _, r := range runs {
		t.Run(r.client.name+"/"+r.c.name+"/"+r.mode+"/"+r.mech, func(t *testing.T) {
			r.result = "FAIL"
			switch {
			case missing[r.client] != nil:
				r.result = "not installed"
				testkit.Missing(t, "client %s cannot run: %v", r.client.name, missing[r.client])
			case r.na != "":
				r.result = "n/a: " + r.na
				return
			}
			checkRun(t, r, p, msgs, attachmentSum)
			if !t.Failed() {
				r.result = "ok"
			}
		})
	}
	t.Log("\n" + matrixTable(runs))
}

// cheapUsersFile gives p's users file alice at bcrypt's lowest cost and
// reloads it: a right password is verified once and then cached, but every
// wrong one is verified, and under the race detector a verification at the
// default cost takes seconds of CPU, which the matrix's 20 wrong passwords
// would spend in a queue for the verification slots.
func cheapUsersFile(t *testing.T, p *postern) {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(alicePass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, p.UsersFile, aliceLogin+":"+string(hash)+"\n")
	if err := p.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.proc.WaitOutput(t, "the users file reloaded", 30*time.Second, func(out string) bool {
		return strings.Contains(out, `msg="users file reloaded"`)
	})
}

// clientVersions asks each client for its version, or why it cannot run
// (a client, or a part it needs, is not installed): its runs then fail
// under CI=true (skipped otherwise).
func clientVersions(t *testing.T, clients []*mailClient, dir, ca string) (versions map[*mailClient]string, missing map[*mailClient]error) {
	versions, missing = make(map[*mailClient]string), make(map[*mailClient]error)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, c := range clients {
		j := mailJob{Dir: filepath.Join(dir, fmt.Sprintf("version-%d", i)), CA: ca}
		if err := os.Mkdir(j.Dir, 0o700); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			v, err := c.version(ctx, j)
			if err == nil && v == "" {
				err = errors.New("it printed no version")
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				missing[c] = err
				return
			}
			versions[c] = v
		}()
	}
	wg.Wait()
	return versions, missing
}

// notLocalPart matches what planMatrix replaces by "-" in a recipient.
var notLocalPart = regexp.MustCompile(`[^a-z0-9]+`)

// planMatrix lists the runs: the ASCII message and the wrong password
// through several pairs, every other case through one, rotated by client.
func planMatrix(clients []*mailClient, versions map[*mailClient]string) []*matrixRun {
	var runs []*matrixRun
	for ci, cl := range clients {
		for k, c := range matrixCases {
			var pairs [][2]string
			switch {
			case c.allPairs:
				pairs = matrixPairs
			case c.wrongPass: // one per mechanism, the listeners rotated
				pairs = [][2]string{matrixPairs[ci%2], matrixPairs[2+ci%2]}
			default:
				pairs = [][2]string{matrixPairs[(ci+k)%len(matrixPairs)]}
			}
			for _, pair := range pairs {
				r := &matrixRun{client: cl, version: versions[cl], c: c, mode: pair[0], mech: pair[1]}
				local := notLocalPart.ReplaceAllString(strings.ToLower(cl.name+"-"+c.name+"-"+r.mode+"-"+r.mech), "-")
				r.rcpt = local + "@" + proxytest.PostfixDomain
				r.body = c.body + "marker " + local + "\n"
				if c.lf && !cl.rawLF {
					r.na = cl.lfNote
				}
				runs = append(runs, r)
			}
		}
	}
	return runs
}

// sendMatrix runs every applicable run, matrixWorkers at a time.
func sendMatrix(t *testing.T, runs []*matrixRun, p *postern, dir, ca string, attachment []byte, attachmentFile string) {
	jobs := make(map[*matrixRun]mailJob)
	for i, r := range runs {
		if r.version == "" || r.na != "" {
			continue
		}
		addr := p.StartTLS
		if r.mode == "tls" {
			addr = p.TLS
		}
		host, port, _ := net.SplitHostPort(addr)
		j := mailJob{Mode: r.mode, Host: host, CA: ca, Mech: r.mech, User: aliceLogin, Pass: alicePass,
			From: aliceLogin, To: r.rcpt, Subject: r.c.subject, Body: r.body,
			Dir: filepath.Join(dir, fmt.Sprintf("run-%d", i))}
		j.Port, _ = strconv.Atoi(port)
		if r.c.wrongPass {
			j.Pass = "wrong " + alicePass
		}
		var att []byte
		if r.c.attachment {
			j.Attachment, att = attachmentFile, attachment
		}
		if !r.client.composes || r.c.lf {
			r.raw = rawMessage(j.From, j.To, j.Subject, j.Body, att, r.c.lf)
			j.Raw = filepath.Join(j.Dir, "message.eml")
		}
		if err := os.Mkdir(j.Dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if j.Raw != "" {
			writeFile(t, j.Raw, string(r.raw))
		}
		jobs[r] = j
	}
	// Every file is in place before the first client starts.
	sem := make(chan struct{}, matrixWorkers)
	var wg sync.WaitGroup
	for _, r := range runs {
		j, ok := jobs[r]
		if !ok {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			start := time.Now()
			r.out, r.err = r.client.send(ctx, j)
			r.took = time.Since(start)
		}()
	}
	wg.Wait()
}

// checkRun checks one run: the client's verdict, the delivered message (or
// its absence), and in Postern's log that the client used the listener and
// mechanism it was told to.
func checkRun(t *testing.T, r *matrixRun, p *postern, msgs []proxytest.Message, attachmentSum [sha256.Size]byte) {
	t.Helper()
	got := proxytest.MessagesTo(msgs, r.rcpt)
	if r.c.wrongPass {
		if r.err == nil {
			t.Fatalf("the client reports success with a wrong password:\n%s", r.out)
		}
		said := r.out + "\n" + r.err.Error()
		if !r.client.authError.MatchString(said) {
			t.Fatalf("the client's output does not match its authentication error %q:\n%s", r.client.authError, said)
		}
		loc := r.client.authError.FindStringIndex(said)
		start := strings.LastIndexByte(said[:loc[0]], '\n') + 1
		line, _, _ := strings.Cut(said[start:], "\n")
		t.Logf("the client said: %s", line)
		if len(got) != 0 {
			t.Fatalf("%d messages delivered with a wrong password", len(got))
		}
		return
	}
	if r.err != nil {
		t.Fatalf("the client failed: %v\n%s", r.err, r.out)
	}
	if len(got) != 1 {
		t.Fatalf("%d messages delivered to %s, want 1", len(got), r.rcpt)
	}
	data := afterReceived(t, got[0])
	checkSession(t, r, p, got[0])
	if r.c.lf {
		// Byte for byte: the LF line ends became CRLF, nothing else
		// changed. The client ends the data with CRLF.CRLF after the
		// message's last LF: one more empty line, as at Postfix itself
		// (TestBareLFClientsE2E). That line also shows the LF reached
		// Postern: a client that wrote CRLF itself would not add it.
		want := append(bytes.ReplaceAll(r.raw, []byte("\n"), []byte("\r\n")), "\r\n"...)
		if !bytes.Equal(data, want) {
			t.Fatalf("delivered\n%q\nwant\n%q", data, want)
		}
		return
	}
	d, err := decodeMessage(data)
	if err != nil {
		t.Fatalf("%v\n%.2000q", err, data)
	}
	if d.Subject != r.c.subject {
		t.Errorf("Subject %q, want %q", d.Subject, r.c.subject)
	}
	if !strings.Contains(d.Text, r.body) {
		t.Errorf("the text does not hold the body sent:\n%q\nwant\n%q\nmessage:\n%.3000q", d.Text, r.body, data)
	}
	switch {
	case r.c.attachment && (len(d.Attachments) != 1 || d.Attachments[0] != attachmentSum):
		t.Errorf("attachments %x, want one with SHA-256 %x", d.Attachments, attachmentSum)
	case !r.c.attachment && len(d.Attachments) != 0:
		t.Errorf("%d attachments, want none", len(d.Attachments))
	}
}

// receivedID is the id in Postern's Received header.
var receivedID = regexp.MustCompile(`\(Postern\) with ESMTPSA id (\S+);`)

// checkSession finds the session that sent m in Postern's log (by the id
// of its Received header) and checks its listener and AUTH mechanism.
func checkSession(t *testing.T, r *matrixRun, p *postern, m proxytest.Message) {
	t.Helper()
	id := receivedID.FindSubmatch(m.Data)
	if id == nil {
		t.Fatalf("no Postern Received header with an id: %.300q", m.Data)
	}
	accepted := logLineWith(t, p, `msg="message accepted"`, " id="+string(id[1])+" ")
	listener := map[string]string{"starttls": " listener=starttls:", "tls": " listener=tls:"}[r.mode]
	if !strings.Contains(accepted, listener) {
		t.Errorf("accepted on another listener than %q: %s", listener, accepted)
	}
	session := regexp.MustCompile(` session=\S+`).FindString(accepted)
	if session == "" {
		t.Fatalf("no session in %s", accepted)
	}
	if auth := logLineWith(t, p, `msg="auth ok"`, session+" "); !strings.Contains(auth+" ", " mech="+r.mech+" ") {
		t.Errorf("the client authenticated with another mechanism than %s: %s", r.mech, auth)
	}
}

// logLineWith returns the one line of Postern's log holding all of parts.
func logLineWith(t *testing.T, p *postern, parts ...string) string {
	t.Helper()
	var found []string
	for _, l := range strings.Split(p.Log(), "\n") {
		all := true
		for _, part := range parts {
			all = all && strings.Contains(l+" ", part)
		}
		if all {
			found = append(found, l)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d log lines with %q, want 1:\n%s", len(found), parts, strings.Join(found, "\n"))
	}
	return found[0]
}

// matrixTable is the table of the runs.
func matrixTable(runs []*matrixRun) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "CLIENT\tVERSION\tCASE\tLISTENER\tAUTH\tTIME\tRESULT")
	names := map[string]string{"starttls": "587 STARTTLS", "tls": "465 TLS"}
	for _, r := range runs {
		took := "-"
		if r.took > 0 {
			took = r.took.Round(10 * time.Millisecond).String()
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.client.name, r.version, r.c.name, names[r.mode], r.mech, took, r.result)
	}
	w.Flush()
	return b.String()
}
