package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// rawClient speaks SMTP over a bare connection so that it controls every
// write (shapes.go): shape pipelining sends MAIL, RCPT and DATA in one write
// (RFC 2920), which go-smtp's client cannot; serial and dot-apart send each
// command in its own write and wait for its reply; every shape but
// dot-apart writes the dot-stuffed message with its final dot in one write.
type rawClient struct {
	conn     net.Conn
	r        *bufio.Reader
	w        *bufio.Writer
	timeout  time.Duration
	shape    string
	envelope []byte // pipelining: MAIL, RCPT and DATA
	mail     string // serial, dot-apart: the commands one at a time
	rcpt     string
	stop     func() bool
}

func dialRaw(ctx context.Context, cfg *loadConfig, tc *tls.Config) (client, error) {
	d := net.Dialer{Timeout: cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	rc := &rawClient{conn: conn, timeout: cfg.Timeout, shape: cfg.Shape}
	rc.stop = context.AfterFunc(ctx, func() { rc.conn.Close() })
	if err := rc.handshake(ctx, cfg, tc); err != nil {
		rc.close()
		return nil, err
	}
	rc.mail, rc.rcpt = fmt.Sprintf("MAIL FROM:<%s>", cfg.From), fmt.Sprintf("RCPT TO:<%s>", cfg.To)
	rc.envelope = []byte(rc.mail + "\r\n" + rc.rcpt + "\r\nDATA\r\n")
	return rc, nil
}

func (rc *rawClient) handshake(ctx context.Context, cfg *loadConfig, tc *tls.Config) error {
	if cfg.Mode == "tls" {
		tconn := tls.Client(rc.conn, tc)
		if err := tconn.HandshakeContext(ctx); err != nil {
			return err
		}
		rc.conn = tconn
	}
	rc.setConn(rc.conn)
	if _, _, err := rc.reply(220); err != nil {
		return err
	}
	ext, err := rc.ehlo()
	if err != nil {
		return err
	}
	if cfg.Mode == "starttls" {
		if _, _, err := rc.cmd(220, "STARTTLS"); err != nil {
			return err
		}
		tconn := tls.Client(rc.conn, tc)
		if err := tconn.HandshakeContext(ctx); err != nil {
			return err
		}
		rc.setConn(tconn)
		if ext, err = rc.ehlo(); err != nil {
			return err
		}
	}
	if cfg.Shape == shapePipelining && !strings.Contains(ext, "\nPIPELINING") {
		return fmt.Errorf("server does not offer PIPELINING")
	}
	if cfg.User != "" {
		ir := base64.StdEncoding.EncodeToString([]byte("\x00" + cfg.User + "\x00" + cfg.Password))
		if _, _, err := rc.cmd(235, "AUTH PLAIN "+ir); err != nil {
			return err
		}
	}
	return nil
}

func (rc *rawClient) setConn(c net.Conn) {
	rc.conn = c
	rc.r = bufio.NewReaderSize(c, 4096)
	rc.w = bufio.NewWriterSize(c, 32*1024)
}

func (rc *rawClient) ehlo() (string, error) {
	_, text, err := rc.cmd(250, "EHLO postern-bench.invalid")
	return text, err
}

func (rc *rawClient) cmd(want int, line string) (int, string, error) {
	rc.conn.SetDeadline(time.Now().Add(rc.timeout))
	rc.w.WriteString(line)
	rc.w.WriteString("\r\n")
	if err := rc.w.Flush(); err != nil {
		return 0, "", err
	}
	return rc.reply(want)
}

// reply reads one (possibly multi-line) reply; text lines are joined by "\n".
// A code other than want is returned as an *smtp.SMTPError.
func (rc *rawClient) reply(want int) (int, string, error) {
	var lines []string
	for {
		line, err := rc.r.ReadString('\n')
		if err != nil {
			return 0, "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 3 {
			return 0, "", fmt.Errorf("malformed reply %q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil {
			return 0, "", fmt.Errorf("malformed reply %q", line)
		}
		rest := ""
		if len(line) > 4 {
			rest = line[4:]
		}
		lines = append(lines, rest)
		if len(line) == 3 || line[3] == ' ' {
			text := strings.Join(lines, "\n")
			if code != want {
				return code, text, &smtp.SMTPError{Code: code, Message: text}
			}
			return code, text, nil
		}
	}
}

func (rc *rawClient) send(msg []byte) error {
	if rc.shape != shapePipelining {
		return rc.sendSerial(msg)
	}
	rc.conn.SetDeadline(time.Now().Add(2 * rc.timeout))
	rc.w.Write(rc.envelope)
	if err := rc.w.Flush(); err != nil {
		return err
	}
	_, _, mailErr := rc.reply(250)
	if mailErr != nil && !isReply(mailErr) {
		return mailErr
	}
	_, _, rcptErr := rc.reply(250)
	if rcptErr != nil && !isReply(rcptErr) {
		return rcptErr
	}
	_, _, dataErr := rc.reply(354)
	if dataErr != nil {
		if !isReply(dataErr) {
			return dataErr
		}
		for _, err := range []error{mailErr, rcptErr} {
			if err != nil {
				return err
			}
		}
		return dataErr
	}
	writeDotStuffed(rc.w, msg)
	rc.w.WriteString(".\r\n")
	if err := rc.w.Flush(); err != nil {
		return err
	}
	if _, _, err := rc.reply(250); err != nil {
		return err
	}
	if mailErr != nil || rcptErr != nil { // 354 after a refused MAIL/RCPT: report that
		return fmt.Errorf("DATA accepted after a refusal: %v %v", mailErr, rcptErr)
	}
	return nil
}

// sendSerial sends one message a command at a time, waiting for each
// reply; dot-apart flushes the message before its final dot.
func (rc *rawClient) sendSerial(msg []byte) error {
	if _, _, err := rc.cmd(250, rc.mail); err != nil {
		return err
	}
	for _, c := range []struct {
		want int
		line string
	}{{250, rc.rcpt}, {354, "DATA"}} {
		if _, _, err := rc.cmd(c.want, c.line); err != nil {
			if isReply(err) {
				rc.cmd(250, "RSET") // back to a clean session; the refusal is the error
			}
			return err
		}
	}
	rc.conn.SetDeadline(time.Now().Add(2 * rc.timeout))
	writeDotStuffed(rc.w, msg)
	if rc.shape == shapeDotApart {
		if err := rc.w.Flush(); err != nil {
			return err
		}
	}
	rc.w.WriteString(".\r\n")
	if err := rc.w.Flush(); err != nil {
		return err
	}
	_, _, err := rc.reply(250)
	return err
}

// writeDotStuffed writes msg (CRLF lines) doubling a leading dot on each line.
func writeDotStuffed(w *bufio.Writer, msg []byte) {
	atLineStart := true
	for len(msg) > 0 {
		if atLineStart && msg[0] == '.' {
			w.WriteByte('.')
		}
		i := bytes.IndexByte(msg, '\n')
		if i < 0 {
			w.Write(msg)
			w.WriteString("\r\n")
			return
		}
		w.Write(msg[:i+1])
		msg = msg[i+1:]
		atLineStart = true
	}
}

func (rc *rawClient) tlsGroup() (tls.CurveID, bool) {
	tc, ok := rc.conn.(*tls.Conn)
	if !ok {
		return 0, false
	}
	return tc.ConnectionState().CurveID, true
}

func (rc *rawClient) quit() error {
	_, _, err := rc.cmd(221, "QUIT")
	return err
}

func (rc *rawClient) close() {
	rc.stop()
	rc.conn.Close()
}
