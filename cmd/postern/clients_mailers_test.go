package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"
)

// The ten clients of the matrix (clients_e2e_test.go), each run as its users
// run it: the command line tools with their own options or config file, the
// libraries by a short script in testdata/clients (Go's net/smtp in the test
// process). Every client trusts the test certificate as its CA.

// mailJob is one message for one client; the scripts read it as JSON.
type mailJob struct {
	Mode string `json:"mode"` // "starttls" (587-style) or "tls" (465-style)
	Host string `json:"host"`
	Port int    `json:"port"`
	CA   string `json:"ca"`   // PEM file the client must trust
	Mech string `json:"mech"` // "PLAIN" or "LOGIN"
	User string `json:"user"`
	Pass string `json:"pass"`
	From string `json:"from"`
	To   string `json:"to"`
	// Subject, Body ("\n" line ends) and Attachment (a file) are for the
	// clients that compose the message; Raw (a file) is the whole message
	// for those that send one as given, and for the LF case.
	Subject    string `json:"subject"`
	Body       string `json:"body"`
	Attachment string `json:"attachment,omitempty"`
	Raw        string `json:"raw,omitempty"`
	// Version asks a script for its library's version only.
	Version bool `json:"version,omitempty"`
	// Dir is the run's own directory, for config and job files.
	Dir string `json:"-"`
}

func (j mailJob) addr() string { return net.JoinHostPort(j.Host, fmt.Sprint(j.Port)) }

// mailClient is one client of the matrix.
type mailClient struct {
	name string
	// composes: the client builds the message from Subject, Body and
	// Attachment; otherwise it sends Raw, the message the test built.
	composes bool
	// rawLF says how the client sends a message's LF line ends as they
	// are ("" when it cannot: it writes CRLF itself, see lfNote).
	rawLF  bool
	lfNote string
	// authError matches what the client says when the password is wrong.
	authError *regexp.Regexp
	// version reports the client's version; an error means the client
	// (or a part it needs) is not installed.
	version func(ctx context.Context, j mailJob) (string, error)
	// send sends j and returns what the client printed.
	send func(ctx context.Context, j mailJob) (string, error)
}

// clientScripts is where the scripts of the library clients are.
const clientScripts = "testdata/clients"

// matrixClients are the ten clients, in the table's order.
func matrixClients() []*mailClient {
	return []*mailClient{
		{
			name: "swaks", composes: true, rawLF: true,
			authError: regexp.MustCompile(`(?m)^\*\*\* No authentication type succeeded`),
			version: func(ctx context.Context, j mailJob) (string, error) {
				if out, err := command(ctx, "", "swaks", "--support"); !strings.Contains(out, "=== TLS supported") {
					return "", fmt.Errorf("swaks without TLS (package libnet-ssleay-perl): %v\n%s", err, out)
				}
				return firstLine(command(ctx, "", "swaks", "--version"))
			},
			send: sendSwaks,
		},
		{
			name: "msmtp", lfNote: "writes CRLF itself",
			authError: regexp.MustCompile(`msmtp: authentication failed`),
			version: func(ctx context.Context, j mailJob) (string, error) {
				out, err := command(ctx, "", "msmtp", "--version")
				if err == nil && !regexp.MustCompile(`TLS/SSL library: (GnuTLS|OpenSSL)`).MatchString(out) {
					return "", fmt.Errorf("msmtp without a TLS library:\n%s", out)
				}
				return firstLine(out, err)
			},
			send: sendMsmtp,
		},
		{
			name: "curl", rawLF: true,
			authError: regexp.MustCompile(`curl: \(67\) Login denied`),
			version: func(ctx context.Context, j mailJob) (string, error) {
				l, err := firstLine(command(ctx, "", "curl", "--version"))
				f := strings.Fields(l) // "curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1 OpenSSL/3.0.17 ..."
				return strings.Join(f[:min(2, len(f))], " "), err
			},
			send: sendCurl,
		},
		{
			name: "python smtplib", composes: true, rawLF: true,
			authError: regexp.MustCompile(`smtplib\.SMTPAuthenticationError: \(535`),
			version:   scriptVersion("python3", "smtplib_send.py"),
			send:      scriptSend("python3", "smtplib_send.py"),
		},
		{
			name: "perl Net::SMTP", lfNote: "datasend writes CRLF itself",
			authError: regexp.MustCompile(`Net::SMTP auth failed: 535`),
			version:   scriptVersion("perl", "netsmtp_send.pl"),
			send:      scriptSend("perl", "netsmtp_send.pl"),
		},
		{
			name: "s-nail", composes: true, lfNote: "composes with CRLF",
			authError: regexp.MustCompile(`(?i)smtp server: 535`),
			version: func(ctx context.Context, j mailJob) (string, error) {
				l, err := firstLine(command(ctx, "", "s-nail", "-V"))
				l, _, _ = strings.Cut(l, ",") // "s-nail v14.9.24, 2022-03-26 (built for Linux)"
				return l, err
			},
			send: sendSNail,
		},
		{
			name: "neomutt", composes: true, lfNote: "composes with CRLF",
			authError: regexp.MustCompile(`(?i)(SASL|SMTP) authentication failed`),
			version: func(ctx context.Context, j mailJob) (string, error) {
				return firstLine(command(ctx, "", "neomutt", "-v"))
			},
			send: sendNeomutt,
		},
		{
			name: "nodemailer", composes: true, lfNote: "composes with CRLF",
			authError: regexp.MustCompile(`nodemailer: EAUTH: Invalid login: 535`),
			version:   scriptVersion("node", "nodemailer/send.js"),
			send:      scriptSend("node", "nodemailer/send.js"),
		},
		{
			name: "go net/smtp", lfNote: "its DATA writer writes CRLF itself",
			authError: regexp.MustCompile(`(?m)^auth: 535 `),
			version: func(context.Context, mailJob) (string, error) {
				return "net/smtp " + runtime.Version(), nil
			},
			send: sendGo,
		},
		{
			name: "PHPMailer", composes: true, lfNote: "composes with CRLF",
			authError: regexp.MustCompile(`PHPMailer: SMTP Error: Could not authenticate\.`),
			version:   scriptVersion("php", "phpmailer_send.php"),
			send:      scriptSend("php", "phpmailer_send.php"),
		},
	}
}

// command runs name with args (stdin from the file stdin unless "") and
// returns what it printed, stdout and stderr together.
func command(ctx context.Context, stdin string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = cleanEnv()
	if stdin != "" {
		f, err := os.Open(stdin)
		if err != nil {
			return "", err
		}
		defer f.Close()
		cmd.Stdin = f
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func firstLine(out string, err error) (string, error) {
	l, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	if err != nil {
		return "", fmt.Errorf("%w: %s", err, out)
	}
	return l, nil
}

// writeJob writes j as JSON in its directory for a script.
func writeJob(j mailJob) (string, error) {
	b, err := json.Marshal(j)
	if err != nil {
		return "", err
	}
	path := filepath.Join(j.Dir, "job.json")
	return path, os.WriteFile(path, b, 0o600)
}

func scriptVersion(interpreter, script string) func(context.Context, mailJob) (string, error) {
	send := scriptSend(interpreter, script)
	return func(ctx context.Context, j mailJob) (string, error) {
		j.Version = true
		return firstLine(send(ctx, j))
	}
}

func scriptSend(interpreter, script string) func(context.Context, mailJob) (string, error) {
	return func(ctx context.Context, j mailJob) (string, error) {
		path, err := writeJob(j)
		if err != nil {
			return "", err
		}
		return command(ctx, "", interpreter, filepath.Join(clientScripts, script), path)
	}
}

// writeBody writes the job's body to a file (for the tools that read it
// from one).
func writeBody(j mailJob) (string, error) {
	path := filepath.Join(j.Dir, "body.txt")
	return path, os.WriteFile(path, []byte(j.Body), 0o600)
}

func sendSwaks(ctx context.Context, j mailJob) (string, error) {
	args := []string{"--timeout", "60", "--server", j.addr(), "--helo", "client.test",
		"--tls-verify", "--tls-ca-path", j.CA,
		"--auth", j.Mech, "--auth-user", j.User, "--auth-password", j.Pass,
		"--from", j.From, "--to", j.To}
	if j.Mode == "tls" {
		args = append(args, "--tls-on-connect")
	} else {
		args = append(args, "--tls")
	}
	if j.Raw != "" {
		// As it is: no line end "fixup" (which writes CRLF), and so no
		// end of data either: the user adds it, after a CRLF as curl
		// and smtplib do.
		data := filepath.Join(j.Dir, "data")
		msg, err := os.ReadFile(j.Raw)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(data, append(msg, "\r\n.\r\n"...), 0o600); err != nil {
			return "", err
		}
		args = append(args, "--data", "@"+data, "--no-data-fixup")
	} else {
		body, err := writeBody(j)
		if err != nil {
			return "", err
		}
		// swaks does not encode headers: the user does.
		args = append(args, "--header", "Subject: "+mime.BEncoding.Encode("utf-8", j.Subject), "--body", "@"+body)
		if j.Attachment != "" {
			args = append(args, "--attach", "@"+j.Attachment)
		}
	}
	return command(ctx, "", "swaks", args...)
}

func sendMsmtp(ctx context.Context, j mailJob) (string, error) {
	conf := filepath.Join(j.Dir, "msmtprc")
	starttls := map[bool]string{true: "on", false: "off"}[j.Mode == "starttls"]
	rc := fmt.Sprintf("account default\nhost %s\nport %d\ntls on\ntls_starttls %s\ntls_trust_file %s\n"+
		"auth %s\nuser %s\npassword \"%s\"\nfrom %s\ndomain client.test\ntimeout 60\n",
		j.Host, j.Port, starttls, j.CA, strings.ToLower(j.Mech), j.User, j.Pass, j.From)
	if err := os.WriteFile(conf, []byte(rc), 0o600); err != nil {
		return "", err
	}
	return command(ctx, j.Raw, "msmtp", "-C", conf, "-f", j.From, j.To)
}

func sendCurl(ctx context.Context, j mailJob) (string, error) {
	scheme := map[bool]string{true: "smtps", false: "smtp"}[j.Mode == "tls"]
	// curl sends the file as it is (LF line ends too, without --crlf).
	// -q first: no ~/.curlrc.
	return command(ctx, "", "curl", "-q", "--silent", "--show-error", "--max-time", "60",
		"--cacert", j.CA, "--ssl-reqd", "--user", j.User+":"+j.Pass, "--login-options", "AUTH="+j.Mech,
		"--mail-from", j.From, "--mail-rcpt", j.To, "-T", j.Raw,
		scheme+"://"+j.addr()+"/client.test")
}

// urlUserinfo percent-encodes s for the user or password of an smtp://
// URL: everything but RFC 3986's unreserved characters (s-nail wants "@"
// encoded too, which url.PathEscape leaves).
func urlUserinfo(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func sendSNail(ctx context.Context, j mailJob) (string, error) {
	body, err := writeBody(j)
	if err != nil {
		return "", err
	}
	scheme := map[bool]string{true: "smtps", false: "smtp"}[j.Mode == "tls"]
	args := []string{"-:/", "-Sv15-compat", "-Ssendwait", "-Sttycharset=utf-8", "-Ssendcharsets=utf-8",
		"-Shostname=client.test", "-Sfrom=" + j.From, "-SDEAD=" + filepath.Join(j.Dir, "dead.letter"),
		// localhost, not 127.0.0.1: s-nail matches the certificate's DNS
		// names only ("TLS certificate does not match: 127.0.0.1").
		"-Smta=" + scheme + "://" + urlUserinfo(j.User) + ":" + urlUserinfo(j.Pass) + "@localhost:" + fmt.Sprint(j.Port),
		"-Ssmtp-auth=" + strings.ToLower(j.Mech),
		"-Stls-ca-file=" + j.CA, "-Stls-ca-no-defaults", "-Stls-verify=strict",
		"-s", j.Subject}
	if j.Mode == "starttls" {
		args = append(args, "-Ssmtp-use-starttls")
	}
	if j.Attachment != "" {
		args = append(args, "-a", j.Attachment)
	}
	args = append(args, j.To)
	return command(ctx, body, "s-nail", args...)
}

func sendNeomutt(ctx context.Context, j mailJob) (string, error) {
	body, err := writeBody(j)
	if err != nil {
		return "", err
	}
	scheme := map[bool]string{true: "smtps", false: "smtp"}[j.Mode == "tls"]
	rc := filepath.Join(j.Dir, "muttrc")
	conf := fmt.Sprintf(`set smtp_url = "%s://%s@%s/"
set smtp_pass = "%s"
set smtp_authenticators = "%s"
set ssl_force_tls = yes
set ssl_starttls = yes
set ssl_ca_certificates_file = "%s"
set certificate_file = "%s/certificates"
set from = "%s"
set use_from = yes
set hostname = "client.test"
set charset = "utf-8"
set send_charset = "utf-8"
set copy = no
set record = ""
set folder = "%s"
set tmpdir = "%s"
`, scheme, urlUserinfo(j.User), j.addr(), j.Pass, strings.ToLower(j.Mech), j.CA, j.Dir, j.From, j.Dir, j.Dir)
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		return "", err
	}
	args := []string{"-n", "-F", rc, "-s", j.Subject}
	if j.Attachment != "" {
		args = append(args, "-a", j.Attachment)
	}
	args = append(args, "--", j.To)
	cmd := exec.CommandContext(ctx, "neomutt", args...)
	cmd.Env = append(cleanEnv(), "HOME="+j.Dir)
	f, err := os.Open(body)
	if err != nil {
		return "", err
	}
	defer f.Close()
	cmd.Stdin = f
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// sendGo sends with Go's net/smtp as a Go program would; LOGIN is the few
// lines every such program writes (net/smtp has PLAIN and CRAM-MD5 only).
func sendGo(ctx context.Context, j mailJob) (string, error) {
	pem, err := os.ReadFile(j.CA)
	if err != nil {
		return "", err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: roots, ServerName: j.Host}
	d := net.Dialer{Timeout: 60 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", j.addr())
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(60 * time.Second)); err != nil {
		return "", err
	}
	if j.Mode == "tls" {
		conn = tls.Client(conn, cfg)
	}
	c, err := smtp.NewClient(conn, j.Host)
	if err != nil {
		return "", fmt.Errorf("greeting: %w", err)
	}
	if err := c.Hello("client.test"); err != nil {
		return "", fmt.Errorf("EHLO: %w", err)
	}
	if j.Mode == "starttls" {
		if err := c.StartTLS(cfg); err != nil {
			return "", fmt.Errorf("STARTTLS: %w", err)
		}
	}
	var a smtp.Auth = smtp.PlainAuth("", j.User, j.Pass, j.Host)
	if j.Mech == "LOGIN" {
		a = loginAuth{j.User, j.Pass}
	}
	if err := c.Auth(a); err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	if err := c.Mail(j.From); err != nil {
		return "", fmt.Errorf("MAIL: %w", err)
	}
	if err := c.Rcpt(j.To); err != nil {
		return "", fmt.Errorf("RCPT: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return "", fmt.Errorf("DATA: %w", err)
	}
	msg, err := os.ReadFile(j.Raw)
	if err != nil {
		return "", err
	}
	if _, err := w.Write(msg); err != nil {
		return "", fmt.Errorf("sending the message: %w", err)
	}
	if err := w.Close(); err != nil {
		return "", fmt.Errorf("end of DATA: %w", err)
	}
	return "", c.Quit()
}

// loginAuth is AUTH LOGIN for net/smtp.
type loginAuth struct{ user, pass string }

func (a loginAuth) Start(*smtp.ServerInfo) (string, []byte, error) { return "LOGIN", nil, nil }

func (a loginAuth) Next(challenge []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	switch strings.ToLower(strings.TrimSpace(string(challenge))) {
	case "username:":
		return []byte(a.user), nil
	case "password:":
		return []byte(a.pass), nil
	}
	return nil, errors.New("unexpected LOGIN challenge " + string(challenge))
}
