// Package dovecot is the Dovecot backend: a client of Dovecot's auth
// protocol (an auth-client unix socket or an inet_listener of service
// auth) that checks a login with SASL PLAIN, many requests multiplexed on
// one connection (client.go), and the protocol's line format: escaping,
// the handshake, AUTH and its replies (proto.go).
//
// It implements auth.Authenticator and imports auth for its types; it must
// never import the other backends (auth/usersfile, auth/ldap), proxy,
// limits, policy or anything under cmd.
package dovecot

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/postern/postern/auth"
)

// Options tunes the Dovecot auth client.
type Options struct {
	// Service is sent as service= (Dovecot's %s, used by passdb rules and
	// per-service settings). Default DefaultService.
	Service string
	// Timeout bounds one request, including a reconnect, when the caller's
	// context has no earlier deadline. Default DefaultTimeout.
	Timeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Service == "" {
		o.Service = DefaultService
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	return o
}

// Client authenticates against a Dovecot auth server (an auth-client unix
// socket or an inet_listener of service auth) with SASL PLAIN. Requests are
// multiplexed over one connection, which is opened lazily and reopened after
// it breaks (e.g. Dovecot restarted). Safe for concurrent use.
type Client struct {
	network, addr string
	opts          Options
	log           *slog.Logger

	// dialLock is a one-slot semaphore held while (re)connecting, so that
	// concurrent requests share one new connection and a waiter can give up
	// when its context ends (a sync.Mutex cannot be abandoned).
	dialLock chan struct{}
	mu       sync.Mutex // guards conn and closed
	conn     *dovecotConn
	closed   bool
}

// New returns a client for the Dovecot auth server at addr; network
// is "unix" (addr is a socket path) or "tcp" (addr is host:port). It does not
// connect until the first request.
func New(network, addr string, opts Options, log *slog.Logger) *Client {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{
		network:  network,
		addr:     addr,
		opts:     opts.withDefaults(),
		log:      log.With("backend", "dovecot", "addr", addr),
		dialLock: make(chan struct{}, 1),
	}
}

var errDovecotClosed = errors.New("dovecot client closed")

// Close closes the connection; later requests fail with auth.ErrUnavailable.
func (d *Client) Close() error {
	d.mu.Lock()
	c := d.conn
	d.conn, d.closed = nil, true
	d.mu.Unlock()
	if c != nil {
		c.shutdown(errDovecotClosed)
	}
	return nil
}

// Authenticate implements auth.Authenticator with one PLAIN exchange.
func (d *Client) Authenticate(ctx context.Context, req auth.Request) (auth.Result, error) {
	// RFC 4616 §2: authcid and passwd are UTF8SAFE, without NUL; a NUL would
	// shift the fields of the PLAIN message we build.
	if req.Login == "" || req.Password == "" ||
		strings.ContainsRune(req.Login, 0) || strings.ContainsRune(req.Password, 0) {
		return auth.Result{}, auth.ErrInvalidCredentials
	}
	ctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()

	conn, err := d.connection(ctx)
	if err != nil {
		return auth.Result{}, d.unavailable("connecting", err)
	}
	reply, err := conn.auth(ctx, d.authParams(req), plainResponse(req.Login, req.Password))
	if err != nil {
		return auth.Result{}, d.unavailable("authenticating", err)
	}
	switch reply.Kind {
	case "OK":
		login := reply.Params["user"]
		if login == "" {
			// Spec: user= "should always be sent if the userid is known";
			// fall back to what the client typed.
			login = req.Login
		}
		return auth.Result{Login: login, Backend: "dovecot"}, nil
	case "FAIL":
		if reply.isTempFail() {
			return auth.Result{}, fmt.Errorf("auth: dovecot at %s: temporary failure (%s): %w",
				d.addr, reply.Params["reason"], auth.ErrUnavailable)
		}
		// Dovecot names the user it looked up (after auth_username_format
		// and passdb rewrites) in FAIL too: the account a guess was aimed
		// at, whichever spelling carried it (see auth.Authenticator).
		return auth.Result{Login: reply.Params["user"], Backend: "dovecot"}, auth.ErrInvalidCredentials
	default:
		// CONT: PLAIN with an initial response is a single step, so the
		// server wants something we cannot give. Cancel, and call it a
		// backend problem, not a wrong password.
		conn.cancel(reply.ID)
		return auth.Result{}, d.unavailable("authenticating", fmt.Errorf("unexpected %s reply to PLAIN", reply.Kind))
	}
}

func (d *Client) unavailable(doing string, err error) error {
	d.log.Warn("dovecot auth unavailable", "doing", doing, "err", err)
	return fmt.Errorf("auth: dovecot at %s: %s: %w: %w", d.addr, doing, auth.ErrUnavailable, err)
}

// authParams are the AUTH parameters before resp=, values tab-escaped.
func (d *Client) authParams(req auth.Request) []string {
	params := []string{"service=" + dovecotTabEscape(d.opts.Service)}
	if req.Secured {
		// The client's connection to us is TLS; without this Dovecot refuses
		// plaintext mechanisms from non-local rips (auth_allow_cleartext /
		// disable_plaintext_auth).
		params = append(params, "secured")
	}
	if req.RemoteIP.IsValid() {
		// rip= makes Dovecot's failure penalty and logs hit the real client,
		// not Postern's own address.
		params = append(params, "rip="+dovecotTabEscape(req.RemoteIP.Unmap().WithZone("").String()))
	}
	return params
}

// plainResponse is the RFC 4616 PLAIN message with an empty authzid.
func plainResponse(login, password string) string {
	msg := make([]byte, 0, 2+len(login)+len(password))
	msg = append(msg, 0)
	msg = append(msg, login...)
	msg = append(msg, 0)
	msg = append(msg, password...)
	return base64.StdEncoding.EncodeToString(msg)
}

// connection returns the live connection, dialling and handshaking a new one
// if there is none.
func (d *Client) connection(ctx context.Context) (*dovecotConn, error) {
	if c := d.current(); c != nil {
		return c, nil
	}
	select {
	case d.dialLock <- struct{}{}:
		defer func() { <-d.dialLock }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Someone else may have connected while we waited.
	if c := d.current(); c != nil {
		return c, nil
	}
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return nil, errDovecotClosed
	}
	c, err := dialDovecot(ctx, d.network, d.addr)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		c.shutdown(errDovecotClosed)
		return nil, errDovecotClosed
	}
	d.conn = c
	d.mu.Unlock()
	d.log.Info("connected to dovecot auth", "network", d.network)
	go func() {
		<-c.done
		d.forget(c)
	}()
	return c, nil
}

func (d *Client) current() *dovecotConn {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.conn
}

// forget drops a broken connection so that the next request reconnects.
func (d *Client) forget(c *dovecotConn) {
	d.mu.Lock()
	if d.conn == c {
		d.conn = nil
	}
	d.mu.Unlock()
	if !errors.Is(c.err, errDovecotClosed) {
		d.log.Warn("dovecot auth connection lost", "err", c.err)
	}
}

// dovecotConn is one handshaken connection with its reader goroutine.
type dovecotConn struct {
	nc      net.Conn
	writeMu sync.Mutex

	mu      sync.Mutex
	nextID  uint32
	pending map[uint32]chan dovecotReply

	done chan struct{} // closed when the connection is unusable
	err  error         // why; set before done is closed
	once sync.Once
}

// dovecotCPIDBase is above Linux's largest possible PID (PID_MAX_LIMIT,
// 2^22). Dovecot refuses a second live connection with the same CPID ("BUG:
// Authentication client gave a PID of existing connection"), and several
// clients in one process (unix and tcp, or old and new during a reload) would
// share os.Getpid(). CPID only matters for the master REQUEST command, which
// an SMTP proxy never uses, so a random value that no real process can have
// is the safe choice.
const dovecotCPIDBase = 1 << 22

func dialDovecot(ctx context.Context, network, addr string) (*dovecotConn, error) {
	var dialer net.Dialer
	nc, err := dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(deadline)
	}
	// Dovecot 2.4 waits for the client's handshake before sending its own,
	// so send ours first; 1.2 is the version that knows code=temp_fail.
	cpid := dovecotCPIDBase + rand.Uint32N(1<<31-dovecotCPIDBase)
	hello := "VERSION\t1\t2\nCPID\t" + strconv.FormatUint(uint64(cpid), 10) + "\n"
	if _, err := nc.Write([]byte(hello)); err != nil {
		nc.Close()
		return nil, fmt.Errorf("sending handshake: %w", err)
	}
	br := bufio.NewReader(nc)
	hs, err := readDovecotHandshake(br)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if !hs.Mechs["PLAIN"] {
		nc.Close()
		return nil, errors.New("server does not offer the PLAIN mechanism (auth_mechanisms)")
	}
	_ = nc.SetDeadline(time.Time{})
	c := &dovecotConn{
		nc:      nc,
		pending: map[uint32]chan dovecotReply{},
		done:    make(chan struct{}),
	}
	go c.readLoop(br)
	return c, nil
}

// readLoop hands every reply to the request waiting for its id. Replies for
// ids nobody waits for (timed out, cancelled) are dropped.
func (c *dovecotConn) readLoop(br *bufio.Reader) {
	for {
		line, err := readDovecotLine(br)
		if err != nil {
			c.shutdown(fmt.Errorf("reading reply: %w", err))
			return
		}
		reply, err := parseDovecotReply(line)
		if err != nil {
			// An unknown command is allowed by the spec and harmless; a
			// broken OK/FAIL/CONT means we can no longer trust the stream.
			if errors.Is(err, errDovecotMalformed) && !isDovecotReplyCmd(line) {
				continue
			}
			c.shutdown(err)
			return
		}
		c.mu.Lock()
		ch := c.pending[reply.ID]
		delete(c.pending, reply.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- reply // buffered, never blocks
		}
	}
}

func isDovecotReplyCmd(line string) bool {
	cmd, _, _ := strings.Cut(line, "\t")
	return cmd == "OK" || cmd == "FAIL" || cmd == "CONT"
}

// shutdown marks the connection unusable (first reason wins) and closes it.
func (c *dovecotConn) shutdown(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.done)
		c.nc.Close()
	})
}

// auth sends one AUTH request and waits for its reply.
func (c *dovecotConn) auth(ctx context.Context, params []string, resp string) (dovecotReply, error) {
	ch := make(chan dovecotReply, 1)
	c.mu.Lock()
	// Spec: the id is "a 32bit number, so typically you'd just increment it
	// by one"; skip 0 and ids still in flight after a wrap-around.
	for {
		c.nextID++
		if _, busy := c.pending[c.nextID]; c.nextID != 0 && !busy {
			break
		}
	}
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()

	line := dovecotAuthLine(id, "PLAIN", params, resp)
	if len(line) > dovecotMaxLine {
		c.drop(id)
		return dovecotReply{}, fmt.Errorf("request of %d bytes exceeds the protocol's line limit", len(line))
	}
	if err := c.write(ctx, line); err != nil {
		c.drop(id)
		return dovecotReply{}, err
	}
	select {
	case reply := <-ch:
		return reply, nil
	case <-c.done:
		select {
		case reply := <-ch: // answered just before the connection broke
			return reply, nil
		default:
			return dovecotReply{}, c.err
		}
	case <-ctx.Done():
		c.drop(id)
		c.cancel(id)
		return dovecotReply{}, ctx.Err()
	}
}

func (c *dovecotConn) drop(id uint32) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// cancel tells the server to forget request id ("CANCEL" TAB <id>), best
// effort and bounded, so a late answer does not cost it work.
func (c *dovecotConn) cancel(id uint32) {
	ctx, stop := context.WithTimeout(context.Background(), time.Second)
	defer stop()
	_ = c.write(ctx, []byte("CANCEL\t"+strconv.FormatUint(uint64(id), 10)+"\n"))
}

// write sends one whole line; a failed or partial write breaks the
// connection, since the server would see a garbled line.
func (c *dovecotConn) write(ctx context.Context, line []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	select {
	case <-c.done:
		return c.err
	default:
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = c.nc.SetWriteDeadline(deadline)
	}
	if _, err := c.nc.Write(line); err != nil {
		err = fmt.Errorf("sending request: %w", err)
		c.shutdown(err)
		return err
	}
	return nil
}
