package smtp

import (
	"errors"
	"net"
	"time"
)

// errLineSkipped: a command line longer than MaxLineLength was read to its
// end and dropped (skipLongLine); it is answered ErrLineTooLong and the
// connection goes on.
var errLineSkipped = errors.New("smtp: too long a line, skipped")

// skipLongLine reads and drops the rest of a command (or AUTH) line found
// longer than MaxLineLength, as Postfix does, so that the client, still
// writing it, reads the reply instead of a reset, and can go on. At most
// Server.MaxLineSkip bytes within Server.LineSkipTimeout: an attacker gets
// no more than that per line, and the connection ends at the protocol
// error limit. It returns errLineSkipped, or ErrTooLongLine when the line
// cannot be skipped (too long, too slow): the reply is then the last. A
// Shutdown interrupts it as any idle read (see readCommand).
func (c *Conn) skipLongLine() error {
	max := c.server.MaxLineSkip
	if max <= 0 {
		return ErrTooLongLine
	}
	if d := c.server.LineSkipTimeout; d > 0 {
		c.setSkipDeadline(time.Now().Add(d))
		// Back to no deadline, or to the one the next read sets.
		defer c.setSkipDeadline(time.Time{})
	}
	err := c.lineLimitReader.skipLine(max)
	var ne net.Error
	switch {
	case err == nil:
		return errLineSkipped
	case errors.As(err, &ne) && ne.Timeout():
		return ErrTooLongLine
	}
	return err
}

// setSkipDeadline sets the read deadline under the lock that Shutdown
// interrupts reads with, never replacing its interrupt.
func (c *Conn) setSkipDeadline(t time.Time) {
	c.stateLocker.Lock()
	defer c.stateLocker.Unlock()
	if c.mustStop() {
		return
	}
	if t.IsZero() && c.server.ReadTimeout != 0 {
		return // the next read sets its own
	}
	c.conn.SetReadDeadline(t)
}

// endIfLineTooLong ends the connection after the reply to a message that
// had a line too long: where the message ends cannot be known, so nothing
// after it may be read as a command.
func (c *Conn) endIfLineTooLong() {
	if c.lineLimitReader.tooLong {
		c.CloseAfterReply()
	}
}
