package smtp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"time"
)

var ErrServerClosed = errors.New("smtp: server already closed")

// Logger interface is used by Server to report unexpected internal errors.
type Logger interface {
	Printf(format string, v ...interface{})
	Println(v ...interface{})
}

// A SMTP server.
type Server struct {
	// The type of network, "tcp" or "unix".
	Network string
	// TCP or Unix address to listen on.
	Addr string
	// The server TLS configuration.
	TLSConfig *tls.Config
	// Enable LMTP mode, as defined in RFC 2033.
	LMTP bool

	Domain            string
	MaxRecipients     int
	MaxMessageBytes   int64
	MaxLineLength     int
	AllowInsecureAuth bool
	Debug             io.Writer
	ErrorLog          Logger
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration

	// MaxLineSkip and LineSkipTimeout bound what is read of a command
	// line longer than MaxLineLength: the rest of the line is read and
	// dropped up to its end, then answered ErrLineTooLong, and the
	// connection goes on (as Postfix does), provided the line ends within
	// MaxLineSkip more bytes and within LineSkipTimeout (when set; the
	// line's ReadTimeout otherwise). Past either bound, or with MaxLineSkip
	// zero, the reply is the last and the connection ends.
	MaxLineSkip     int64
	LineSkipTimeout time.Duration

	// Advertise SMTPUTF8 (RFC 6531) capability.
	// Should be used only if backend supports it.
	EnableSMTPUTF8 bool

	// Advertise REQUIRETLS (RFC 8689) capability.
	// Should be used only if backend supports it.
	EnableREQUIRETLS bool

	// Advertise BINARYMIME (RFC 3030) capability.
	// Should be used only if backend supports it.
	EnableBINARYMIME bool

	// Advertise DSN (RFC 3461) capability.
	// Should be used only if backend supports it.
	EnableDSN bool

	// Advertise RRVS (RFC 7293) capability.
	// Should be used only if backend supports it.
	EnableRRVS bool

	// Advertise DELIVERBY (RFC 2852) capability.
	// Should be used only if backend supports it.
	EnableDELIVERBY bool
	// The minimum time, with seconds precision, that a client
	// may specify in the BY argument with return mode.
	// A zero value indicates no set minimum.
	// Only use if DELIVERBY is enabled.
	MinimumDeliverByTime time.Duration

	// Advertise MT-PRIORITY (RFC 6710) capability.
	// Should only be used if backend supports it.
	EnableMTPRIORITY bool
	// The priority profile mapping as defined
	// in RFC 6710 section 10.2.
	//
	// Default value of NONE to advertise no specific profile.
	MtPriorityProfile PriorityProfile

	// The server backend.
	Backend Backend

	wg   sync.WaitGroup
	done chan struct{}

	locker    sync.Mutex
	listeners []net.Listener
	conns     map[*Conn]struct{}
	stopping  bool // Shutdown has begun

	// The connections' read and write buffers while they wait for input.
	readers, writers sync.Pool
}

func (s *Server) getReader(r io.Reader) *bufio.Reader {
	if br, ok := s.readers.Get().(*bufio.Reader); ok {
		br.Reset(r)
		return br
	}
	return bufio.NewReader(r)
}

func (s *Server) putReader(br *bufio.Reader) {
	br.Reset(nil)
	s.readers.Put(br)
}

func (s *Server) getWriter(w io.Writer) *bufio.Writer {
	if bw, ok := s.writers.Get().(*bufio.Writer); ok {
		bw.Reset(w)
		return bw
	}
	return bufio.NewWriter(w)
}

func (s *Server) putWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	s.writers.Put(bw)
}

// New creates a new SMTP server.
func NewServer(be Backend) *Server {
	return &Server{
		// Doubled maximum line length per RFC 5321 (Section 4.5.3.1.6)
		MaxLineLength: 2000,

		Backend:  be,
		done:     make(chan struct{}, 1),
		ErrorLog: log.New(os.Stderr, "smtp/server ", log.LstdFlags),
		conns:    make(map[*Conn]struct{}),
	}
}

// Serve accepts incoming connections on the Listener l.
func (s *Server) Serve(l net.Listener) error {
	s.locker.Lock()
	s.listeners = append(s.listeners, l)
	s.locker.Unlock()

	var tempDelay time.Duration // how long to sleep on accept failure

	for {
		c, err := l.Accept()
		if err != nil {
			select {
			case <-s.done:
				// we called Close()
				return nil
			default:
			}
			if ne, ok := err.(net.Error); ok && ne.Temporary() {
				if tempDelay == 0 {
					tempDelay = 5 * time.Millisecond
				} else {
					tempDelay *= 2
				}
				if max := 1 * time.Second; tempDelay > max {
					tempDelay = max
				}
				s.ErrorLog.Printf("accept error: %s; retrying in %s", err, tempDelay)
				time.Sleep(tempDelay)
				continue
			}
			return err
		}

		s.wg.Add(1)
		go func() {
			defer s.wg.Done()

			err := s.handleConn(newConn(c, s))
			if err != nil {
				s.ErrorLog.Printf("error handling %v: %s", c.RemoteAddr(), err)
			}
		}()
	}
}

func (s *Server) handleConn(c *Conn) error {
	s.locker.Lock()
	s.conns[c] = struct{}{}
	if s.stopping {
		c.shutdown(false)
	}
	s.locker.Unlock()

	defer func() {
		c.Close()
		c.releaseBuffers() // for the next connection

		s.locker.Lock()
		delete(s.conns, c)
		s.locker.Unlock()
	}()

	// A ConnectBackend may refuse the connection (its reply goes
	// where the greeting would, after an implicit-TLS handshake).
	var refused error
	if cb, ok := s.Backend.(ConnectBackend); ok {
		refused = cb.Connect(c)
	}

	if tlsConn, ok := c.conn.(*tls.Conn); ok {
		if d := s.ReadTimeout; d != 0 {
			c.conn.SetReadDeadline(time.Now().Add(d))
		}
		if d := s.WriteTimeout; d != 0 {
			c.conn.SetWriteDeadline(time.Now().Add(d))
		}
		if err := implicitHandshake(tlsConn); err != nil {
			return err
		}
	}

	if refused != nil {
		c.writeError(421, EnhancedCode{4, 0, 0}, refused)
		return nil
	}
	c.greet()

	for {
		line, err := c.readCommand()
		if err == nil {
			cmd, arg, err := parseCmd(line)
			if err != nil {
				c.protocolError(501, EnhancedCode{5, 5, 2}, "Bad command")
				continue
			}

			c.handle(cmd, arg)
			if c.closeAfterReply.Load() {
				// The reply was the last (CloseAfterReply). What the
				// client sent after the command is dropped unread,
				// without a reset that could lose the reply.
				c.lingeringClose()
				return nil
			}
			if c.closed.Load() {
				// QUIT, too many errors: the commands buffered
				// behind the last one are not run.
				return nil
			}
		} else {
			if err == ErrShuttingDown {
				c.writeError(0, EnhancedCode{}, ErrShuttingDown)
				return nil
			}
			if err == io.EOF || errors.Is(err, net.ErrClosed) {
				return nil
			}
			if err == errLineSkipped {
				// The line was read to its end (skipLongLine):
				// nothing of it is run, the connection goes on.
				c.protocolError(ErrLineTooLong.Code, ErrLineTooLong.EnhancedCode, ErrLineTooLong.Message)
				if c.closed.Load() {
					return nil // too many errors: nothing after it runs
				}
				continue
			}
			if err == ErrTooLongLine {
				// Reply, and do not lose the reply to a reset.
				c.writeError(0, EnhancedCode{}, ErrLineTooLong)
				c.lingeringClose()
				return nil
			}

			if neterr, ok := err.(net.Error); ok && neterr.Timeout() {
				c.writeResponse(421, EnhancedCode{4, 4, 2}, "Idle timeout, bye bye")
				return nil
			}

			// A read that fails with an *SMTPError (the
			// connection's login deadline passed) ends with that reply.
			if smtpErr, ok := err.(*SMTPError); ok {
				c.writeError(421, EnhancedCode{4, 0, 0}, smtpErr)
				return nil
			}

			c.writeResponse(421, EnhancedCode{4, 4, 0}, "Connection error, sorry")
			return err
		}
	}
}

func (s *Server) network() string {
	if s.Network != "" {
		return s.Network
	}
	if s.LMTP {
		return "unix"
	}
	return "tcp"
}

// ListenAndServe listens on the network address s.Addr and then calls Serve
// to handle requests on incoming connections.
//
// If s.Addr is blank and LMTP is disabled, ":smtp" is used.
func (s *Server) ListenAndServe() error {
	network := s.network()

	addr := s.Addr
	if !s.LMTP && addr == "" {
		addr = ":smtp"
	}

	l, err := net.Listen(network, addr)
	if err != nil {
		return err
	}

	return s.Serve(l)
}

// ListenAndServeTLS listens on the TCP network address s.Addr and then calls
// Serve to handle requests on incoming TLS connections.
//
// If s.Addr is blank and LMTP is disabled, ":smtps" is used.
func (s *Server) ListenAndServeTLS() error {
	network := s.network()

	addr := s.Addr
	if !s.LMTP && addr == "" {
		addr = ":smtps"
	}

	l, err := tls.Listen(network, addr, s.TLSConfig)
	if err != nil {
		return err
	}

	return s.Serve(l)
}

// Close immediately closes all active listeners and connections.
//
// Close returns any error returned from closing the server's underlying
// listener(s).
func (s *Server) Close() error {
	select {
	case <-s.done:
		return ErrServerClosed
	default:
		close(s.done)
	}

	var err error
	s.locker.Lock()
	for _, l := range s.listeners {
		if lerr := l.Close(); lerr != nil && err == nil {
			err = lerr
		}
	}

	for conn := range s.conns {
		conn.Close()
	}
	s.locker.Unlock()

	return err
}

// Shutdown gracefully shuts down the server without interrupting any
// mail transaction. Shutdown works by first closing all open
// listeners, then ending each connection once it has no mail transaction
// in progress (at once if it is waiting for a command) with ErrShuttingDown
// (421, RFC 5321 section 3.8), written by the connection's own goroutine,
// and waiting for the connections to close.
// If the provided context expires before the shutdown is complete, the
// connections still open are ended the same way, transaction or not (a
// message being received sees its reader fail), and Shutdown returns the
// context's error; otherwise it returns any error returned from closing
// the Server's underlying Listener(s). Close cuts what is left.
//
// Connections are told by a read deadline in the past: a net.Conn wrapper
// that manages its own read deadlines must honour the ones set by the
// server.
func (s *Server) Shutdown(ctx context.Context) error {
	select {
	case <-s.done:
		return ErrServerClosed
	default:
		close(s.done)
	}

	var err error
	s.locker.Lock()
	for _, l := range s.listeners {
		if lerr := l.Close(); lerr != nil && err == nil {
			err = lerr
		}
	}
	s.stopping = true
	for conn := range s.conns {
		conn.shutdown(false)
	}
	s.locker.Unlock()

	connDone := make(chan struct{})
	go func() {
		defer close(connDone)
		s.wg.Wait()
	}()

	select {
	case <-ctx.Done():
		s.locker.Lock()
		for conn := range s.conns {
			conn.shutdown(true)
		}
		s.locker.Unlock()
		return ctx.Err()
	case <-connDone:
		return err
	}
}

// implicitHandshake is handshake for an implicit-TLS connection, whose
// goroutine has no command handler's recover above it: a panic in the
// handshake (GetCertificate, say) ends this connection, not the process.
func implicitHandshake(tc *tls.Conn) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in TLS handshake: %v\n%s", p, debug.Stack())
		}
	}()
	return handshake(tc)
}
