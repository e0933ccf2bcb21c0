package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
)

// The messages of the client matrix (clients_e2e_test.go): what the test
// builds for the clients that send a message as given (rawMessage), and what
// it reads back out of a delivered one, whoever composed it (decodeMessage).

// matrixBoundary separates the parts of the multipart messages the test builds.
const matrixBoundary = "postern-matrix-boundary"

// rawMessage is the message a script would build for msmtp, curl, Net::SMTP
// or net/smtp: an 8-bit text/plain body (lines of body end in "\n"), and,
// with an attachment, a multipart/mixed one with the attachment in base64.
// Line ends are CRLF unless lf.
func rawMessage(from, to, subject, body string, attachment []byte, lf bool) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\nTo: %s\nSubject: %s\n", from, to, mime.BEncoding.Encode("utf-8", subject))
	b.WriteString("Date: Mon, 07 Dec 2026 12:00:00 +0000\nMIME-Version: 1.0\n")
	text := "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n" + body
	if attachment == nil {
		b.WriteString(text)
	} else {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=%q\n\n--%s\n%s\n--%s\n", matrixBoundary, matrixBoundary, text, matrixBoundary)
		b.WriteString("Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n" +
			"Content-Disposition: attachment; filename=\"attachment.bin\"\n\n")
		enc := base64.StdEncoding.EncodeToString(attachment)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\n")
			enc = enc[76:]
		}
		fmt.Fprintf(&b, "%s\n--%s--\n", enc, matrixBoundary)
	}
	if lf {
		return []byte(b.String())
	}
	return []byte(strings.ReplaceAll(b.String(), "\n", "\r\n"))
}

// decodedMessage is a delivered message as its reader sees it.
type decodedMessage struct {
	Subject string // RFC 2047 words decoded
	Text    string // the text/plain parts, transfer encoding undone, CRLF as LF
	// Attachments holds the SHA-256 of each non-text part, decoded.
	Attachments [][sha256.Size]byte
}

// decodeMessage parses a message (CRLF line ends) down to its text and
// attachments, undoing each part's transfer encoding.
func decodeMessage(data []byte) (decodedMessage, error) {
	var d decodedMessage
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return d, fmt.Errorf("parsing the message: %w", err)
	}
	if d.Subject, err = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject")); err != nil {
		return d, fmt.Errorf("decoding Subject %q: %w", m.Header.Get("Subject"), err)
	}
	return d, d.addPart(m.Header, m.Body)
}

// partHeader is a message's header (mail.Header) or a part's
// (textproto.MIMEHeader).
type partHeader interface{ Get(string) string }

// addPart adds one part (or the whole message) to d, descending into
// multiparts.
func (d *decodedMessage) addPart(h partHeader, body io.Reader) error {
	ctype := h.Get("Content-Type")
	if ctype == "" {
		ctype = "text/plain"
	}
	mediaType, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		return fmt.Errorf("Content-Type %q: %w", ctype, err)
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("reading %s: %w", mediaType, err)
			}
			if err := d.addPart(p.Header, p); err != nil {
				return err
			}
		}
	}
	switch cte := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))); cte {
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body) // skips CR and LF
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "", "7bit", "8bit", "binary":
	default:
		return fmt.Errorf("unknown Content-Transfer-Encoding %q", cte)
	}
	content, err := io.ReadAll(body)
	if err != nil {
		return fmt.Errorf("decoding a %s part: %w", mediaType, err)
	}
	if mediaType == "text/plain" && !strings.Contains(h.Get("Content-Disposition"), "attachment") {
		d.Text += strings.ReplaceAll(string(content), "\r\n", "\n")
		return nil
	}
	d.Attachments = append(d.Attachments, sha256.Sum256(content))
	return nil
}
