package ledger

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// The client behaves like a mail client with a queue: it sends a few
// messages per connection, retries a 4xx reply or a broken connection on a
// new connection after a growing wait, and gives up on a 5xx reply. Every
// attempt is one line of its log; the ledger reads the attempts back.

// Client timeouts: above Postern's own (--upstream-timeout 20s), so
// a stall shows as Postern's reply when Postern gives one.
const (
	dialTimeout    = 10 * time.Second
	commandTimeout = 45 * time.Second
	// giveUpAfter bounds the retries of one message: a message still
	// not sent after it is a failure of the run, not a wait for ever.
	giveUpAfter = 4 * time.Minute
)

// attempt is one try at sending one message.
type attempt struct {
	ID    int
	Try   int
	Via   string // the replica that greeted (its hostname), "" if none did
	Stage string // where it ended: connect, greet, tls, auth, mail, rcpt, data, body, dot, or done
	Reply string // the reply read at Stage ("" if none)
	Err   string // the error ("" for a 250 at the dot)
	At    time.Time
}

// acked reports whether the client read 250 for the message's final dot.
func (a attempt) acked() bool { return a.Stage == "done" }

func (a attempt) String() string {
	return fmt.Sprintf("%s %06d try=%d via=%s stage=%s reply=%q err=%q",
		a.At.UTC().Format("15:04:05.000"), a.ID, a.Try, a.Via, a.Stage, a.Reply, a.Err)
}

var queuedAs = regexp.MustCompile(`queued as ([0-9A-Za-z]+)`)

// queueID is the upstream's queue id in a 250 reply, "" if it names none.
func (a attempt) queueID() string {
	if m := queuedAs.FindStringSubmatch(a.Reply); m != nil {
		return m[1]
	}
	return ""
}

// mailClient sends through addr (HAProxy's balanced frontend).
type mailClient struct {
	addr string
	seed uint64

	mu       sync.Mutex
	attempts []attempt
	logw     io.Writer // the client's log, one attempt a line
}

func (c *mailClient) record(a attempt) {
	a.At = time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.attempts = append(c.attempts, a)
	fmt.Fprintln(c.logw, a.String())
}

// Attempts returns every attempt so far, in the order they ended.
func (c *mailClient) Attempts() []attempt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]attempt(nil), c.attempts...)
}

// greetingConn remembers the first line the server sent (the banner,
// before TLS): it names the replica behind HAProxy.
type greetingConn struct {
	net.Conn
	mu     sync.Mutex
	banner []byte
	done   bool
}

func (g *greetingConn) Read(b []byte) (int, error) {
	n, err := g.Conn.Read(b)
	g.mu.Lock()
	if !g.done {
		g.banner = append(g.banner, b[:n]...)
		if i := strings.IndexByte(string(g.banner), '\n'); i >= 0 {
			g.banner, g.done = g.banner[:i], true
		}
	}
	g.mu.Unlock()
	return n, err
}

// via is the host name in the banner ("220 r1.ledger.test ESMTP ...").
func (g *greetingConn) via() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	f := strings.Fields(string(g.banner))
	if len(f) >= 2 {
		return f[1]
	}
	return ""
}

// session is one connection, logged in.
type session struct {
	c   *smtp.Client
	via string
}

// dial connects, reads the banner, upgrades to TLS and logs in; the stage
// it failed at is returned with the error.
func (c *mailClient) dial(l login) (*session, string, string, error) {
	raw, err := net.DialTimeout("tcp", c.addr, dialTimeout)
	if err != nil {
		return nil, "", "connect", err
	}
	g := &greetingConn{Conn: raw}
	sc := smtp.NewClient(g)
	sc.CommandTimeout = commandTimeout
	sc.SubmissionTimeout = commandTimeout
	if err := sc.Hello("client.ledger.test"); err != nil {
		sc.Close()
		return nil, g.via(), "greet", err
	}
	if err := sc.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
		sc.Close()
		return nil, g.via(), "tls", err
	}
	if err := sc.Auth(sasl.NewPlainClient("", l.name, l.password)); err != nil {
		sc.Close()
		return nil, g.via(), "auth", err
	}
	return &session{c: sc, via: g.via()}, g.via(), "", nil
}

// message is message id's text: a few headers, X-Ledger-Id, and a body
// of some hundred bytes to some ten kilobytes.
func message(id int, from, to string, bodyLines int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: <%s>\r\nTo: <%s>\r\nSubject: ledger message %06d\r\n", from, to, id)
	fmt.Fprintf(&b, "Message-ID: <ledger.%06d@client.ledger.test>\r\nX-Ledger-Id: %06d\r\n\r\n", id, id)
	for i := range bodyLines {
		fmt.Fprintf(&b, "line %04d of message %06d: the quick brown fox jumps over the lazy dog\r\n", i, id)
	}
	return b.String()
}

// send sends message id on s; it returns the stage reached, the reply read
// there and the error (nil: 250 at the dot).
func send(s *session, id int, from, to string, bodyLines int) (stage, reply string, err error) {
	if err := s.c.Mail(from, nil); err != nil {
		return "mail", replyOf(err), err
	}
	if err := s.c.Rcpt(to, nil); err != nil {
		return "rcpt", replyOf(err), err
	}
	w, err := s.c.Data()
	if err != nil {
		return "data", replyOf(err), err
	}
	if _, err := io.Copy(w, strings.NewReader(message(id, from, to, bodyLines))); err != nil {
		return "body", "", err
	}
	// From here the final dot may be on its way: whatever happens, a
	// copy may be delivered.
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "dot", replyOf(err), err
	}
	return "done", "250 " + resp.StatusText, nil
}

// replyOf is the SMTP reply in err, "" when err is not one (a broken
// connection, a timeout).
func replyOf(err error) string {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return fmt.Sprintf("%d %d.%d.%d %s", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], se.Message)
	}
	return ""
}

// permanent reports a 5xx reply: a mail client gives up on the message.
func permanent(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code/100 == 5
}

// worker sends the ids it takes from ids as l, perConn messages at most per
// connection, until ids is closed.
func (c *mailClient) worker(w int, l login, ids <-chan int) {
	rng := rand.New(rand.NewPCG(c.seed, uint64(w)))
	var s *session
	sent := 0
	closeSession := func(quit bool) {
		if s == nil {
			return
		}
		if quit {
			_ = s.c.Quit()
		}
		s.c.Close()
		s, sent = nil, 0
	}
	defer closeSession(true)
	perConn := 1 + rng.IntN(10)
	for id := range ids {
		to := fmt.Sprintf("rcpt%d@example.test", id%7)
		bodyLines := 2 + rng.IntN(150)
		began := time.Now()
		for try := 1; ; try++ {
			var a attempt
			var err error
			if s == nil {
				var via, stage string
				s, via, stage, err = c.dial(l)
				if err != nil {
					a = attempt{ID: id, Try: try, Via: via, Stage: stage, Reply: replyOf(err), Err: err.Error()}
				}
			}
			if err == nil {
				var stage, reply string
				stage, reply, err = send(s, id, l.name, to, bodyLines)
				a = attempt{ID: id, Try: try, Via: s.via, Stage: stage, Reply: reply}
				if err != nil {
					a.Err = err.Error()
				}
			}
			c.record(a)
			if err == nil {
				sent++
				if sent >= perConn {
					closeSession(true)
					perConn = 1 + rng.IntN(10)
				}
				break
			}
			// A mail client starts again on a new connection.
			closeSession(false)
			if permanent(err) || time.Since(began) > giveUpAfter {
				break
			}
			// Backoff: 100 ms doubling to 3.2 s, with jitter.
			wait := 100 * time.Millisecond << min(try-1, 5)
			time.Sleep(wait/2 + time.Duration(rng.Int64N(int64(wait))))
		}
	}
}
