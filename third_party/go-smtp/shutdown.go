package smtp

import (
	"net"
	"time"
)

// ErrShuttingDown is the last reply of a connection that Server.Shutdown
// ends (RFC 5321 section 3.8: a server that is shut down SHOULD send 421).
var ErrShuttingDown = &SMTPError{
	Code:         421,
	EnhancedCode: EnhancedCode{4, 3, 2},
	Message:      "Service shutting down, try again later",
}

// How far a connection is in the server's shutdown.
const (
	running    = iota
	stopIdle   // Shutdown began: end once no mail transaction is in progress
	stopAlways // Shutdown's context ended: end now
)

// aLongTimeAgo is a read deadline that makes a blocked read return at once.
var aLongTimeAgo = time.Unix(1, 0)

// readCommand reads the next command line, or returns ErrShuttingDown when
// the server's shutdown ends the connection first. Between two commands
// outside a mail transaction the connection is idle: a Shutdown then
// interrupts the read (see shutdown), and a line that arrives during the
// shutdown gets ErrShuttingDown instead of being run (RFC 5321 section 3.8:
// 421 may answer any command). A transaction is left to finish.
func (c *Conn) readCommand() (string, error) {
	c.stateLocker.Lock()
	if c.mustStop() {
		c.stateLocker.Unlock()
		return "", ErrShuttingDown
	}
	c.idle = !c.fromReceived
	// Under the lock: an interrupt set by shutdown is not replaced by
	// this deadline, whichever comes first.
	err := c.setReadTimeout()
	c.stateLocker.Unlock()
	if err != nil {
		return "", err
	}
	line, err := c.readLineNoTimeout()
	if err == ErrTooLongLine {
		err = c.skipLongLine()
	}
	c.stateLocker.Lock()
	c.idle = false
	stop := c.mustStop()
	c.stateLocker.Unlock()
	if stop {
		return "", ErrShuttingDown
	}
	return line, err
}

func (c *Conn) mustStop() bool {
	return c.stop == stopAlways || c.stop == stopIdle && !c.fromReceived
}

// shutdown tells the connection that the server is shutting down; always:
// even inside a mail transaction. A read it has to interrupt (an idle
// connection's, or any read once always is set) fails at once, and the
// connection's own goroutine writes ErrShuttingDown: nothing is written to
// the connection from the goroutine that shuts the server down.
func (c *Conn) shutdown(always bool) {
	c.stateLocker.Lock()
	defer c.stateLocker.Unlock()
	if always {
		c.stop = stopAlways
	} else if c.stop == running {
		c.stop = stopIdle
	}
	if c.stop == stopAlways || c.idle {
		c.conn.SetReadDeadline(aLongTimeAgo)
	}
}

// setConn replaces the connection (STARTTLS) under the lock that shutdown
// reads it with.
func (c *Conn) setConn(conn net.Conn) {
	c.stateLocker.Lock()
	defer c.stateLocker.Unlock()
	c.conn = conn
}
