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

// rawClient speaks SMTP over a bare connection so that it can pipeline
// (RFC 2920): MAIL, RCPT and DATA go out in one write, and the prepared
// message (already dot-stuffed, with its final dot) in another. go-smtp's
// client waits for each reply, so it cannot do this.
type rawClient struct {
	conn     net.Conn
	r        *bufio.Reader
	w        *bufio.Writer
	timeout  time.Duration
	envelope []byte
	stop     func() bool
}

func dialRaw(ctx context.Context, cfg *loadConfig, tc *tls.Config) (client, error) {
	d := net.Dialer{Timeout: cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	rc := &rawClient{conn: conn, timeout: cfg.Timeout}
	rc.stop = context.AfterFunc(ctx, func() { rc.conn.Close() })
	if err := rc.handshake(ctx, cfg, tc); err != nil {
		rc.close()
		return nil, err
	}
	rc.envelope = []byte(fmt.Sprintf("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n", cfg.From, cfg.To))
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
	if !strings.Contains(ext, "\nPIPELINING") {
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
