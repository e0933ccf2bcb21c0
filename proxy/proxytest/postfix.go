// Package proxytest provides the upstream MTAs Postern's tests talk to: a
// private, throw-away Postfix instance (StartPostfix) for end-to-end tests and
// a scriptable in-process SMTP server (StartUpstream) for unit tests of the
// forwarding code, including its failure paths.
package proxytest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/testkit"
)

// PostfixHostname is the myhostname of every test Postfix; it appears in its
// banner, its Received header and its queue ids' log lines.
const PostfixHostname = "upstream.test"

// PostfixDomain is the only domain the test Postfix delivers; every local
// part of it is accepted and delivered into one Maildir (see MailDir).
const PostfixDomain = "example.test"

// Recipients the test Postfix always refuses, so tests can see a refused
// recipient passed through.
const (
	// RejectedRecipient gets "550 5.1.1 <addr>: Recipient address rejected: no such user here".
	RejectedRecipient = "rejected@example.test"
	// TempfailRecipient gets "450 4.2.0 <addr>: Recipient address rejected: try later".
	TempfailRecipient = "tempfail@example.test"
)

// PostfixOptions configures StartPostfix. The zero value is a usable
// default.
type PostfixOptions struct {
	// MessageSizeLimit is Postfix's message_size_limit in bytes; 0 means
	// 64 MiB, above Postern's 50 MB default so Postern's own limit is what a
	// test hits unless it sets this lower.
	MessageSizeLimit int64
	// XCLIENT lets 127.0.0.1 use the XCLIENT command
	// (smtpd_authorized_xclient_hosts).
	XCLIENT bool
	// MainCF holds extra "name = value" lines for main.cf; a name set
	// here replaces the harness's own setting of it.
	MainCF []string
	// RecipientAccess holds extra regexp-table lines checked before the
	// built-in rejected@/tempfail@ rules, e.g.
	// `/^full@example\.test$/ 452 4.2.2 mailbox full`.
	RecipientAccess []string
	// StartTimeout bounds how long a start may take; 0 means 30 s.
	StartTimeout time.Duration
}

// Postfix is a private Postfix instance owned by one test. Nothing of the
// system instance (/etc/postfix, /var/spool/postfix) is read or written.
type Postfix struct {
	// Addr is the smtpd listener, "127.0.0.1:PORT"; it stays the same
	// across Stop and Start.
	Addr string
	// Dir is the instance's root: conf/, queue/, data/, mail/, maillog.
	Dir string
	// MailDir is the Maildir all mail for PostfixDomain is delivered to.
	MailDir string

	t       testing.TB
	master  string // path of the master daemon
	timeout time.Duration

	mu   sync.Mutex
	proc *masterProcess // nil while stopped
}

// StartPostfix builds a private Postfix instance in a fresh directory and
// starts it; it returns once smtpd answers with a 220 banner. The instance
// is stopped and its directory removed when the test ends. It needs root
// (Postfix's master refuses anything else); without root the test fails
// under CI=true and is skipped otherwise.
func StartPostfix(t testing.TB, opts PostfixOptions) *Postfix {
	t.Helper()
	testkit.RequireTool(t, "postfix")
	postconf := testkit.RequireTool(t, "postconf")
	if os.Geteuid() != 0 {
		if testkit.InCI() {
			t.Fatalf("the test Postfix must run as root (its master daemon requires it)")
		}
		t.Skip("the test Postfix needs root; CI=true makes this a failure")
	}

	// daemon_directory differs between distributions (Debian:
	// /usr/lib/postfix/sbin), so ask the installed Postfix.
	out, err := exec.Command(postconf, "-d", "-h", "daemon_directory").Output()
	if err != nil {
		t.Fatalf("asking postconf for daemon_directory: %v", err)
	}
	master := filepath.Join(strings.TrimSpace(string(out)), "master")

	// Not t.TempDir: that sits below a 0700 directory, and the
	// unprivileged delivery user must traverse every component of the
	// path to reach the Maildir. Our own directory directly in the temp
	// dir (mode 1777) can be made 0755.
	dir, err := os.MkdirTemp("", "postern-postfix-")
	if err != nil {
		t.Fatalf("creating the Postfix directory: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			// Keep the log readable in the failure output; the
			// directory itself goes away.
			if b, err := os.ReadFile(filepath.Join(dir, "maillog")); err == nil {
				t.Logf("test Postfix maillog (%s):\n%s", dir, b)
			}
		}
		os.RemoveAll(dir)
	})

	p := &Postfix{
		Addr:    testkit.FreeAddr(t),
		Dir:     dir,
		MailDir: filepath.Join(dir, "mail", PostfixDomain, "catchall"),
		t:       t,
		master:  master,
		timeout: opts.StartTimeout,
	}
	if p.timeout == 0 {
		p.timeout = 30 * time.Second
	}
	if err := p.build(opts); err != nil {
		t.Fatalf("building the test Postfix in %s: %v", dir, err)
	}
	t.Cleanup(p.Stop)
	p.Start()
	return p
}

// ConfigDir is the instance's config_directory, for `postfix -c` or
// `postconf -c`.
func (p *Postfix) ConfigDir() string { return filepath.Join(p.Dir, "conf") }

// build lays out the directories and writes main.cf, master.cf and the
// lookup tables.
func (p *Postfix) build(opts PostfixOptions) error {
	pf, err := user.Lookup("postfix")
	if err != nil {
		return fmt.Errorf("looking up the postfix user: %w", err)
	}
	pfUID, _ := strconv.Atoi(pf.Uid)
	// The Maildir belongs to an unprivileged user that is not the mail
	// system's own (virtual(8) refuses uid 0 and anything below
	// virtual_minimum_uid).
	vuid, vgid := 65534, 65534
	if nobody, err := user.Lookup("nobody"); err == nil {
		vuid, _ = strconv.Atoi(nobody.Uid)
		vgid, _ = strconv.Atoi(nobody.Gid)
	}
	postdrop := 0
	if g, err := user.LookupGroup("postdrop"); err == nil {
		postdrop, _ = strconv.Atoi(g.Gid)
	}

	type entry struct {
		path     string
		mode     os.FileMode
		uid, gid int
	}
	// The layout that `postfix set-permissions` would create
	// (/etc/postfix/postfix-files); done here because `postfix check`
	// costs seconds per start. Postfix refuses to run on a queue it
	// considers unsafe, hence the explicit owners and modes.
	q := filepath.Join(p.Dir, "queue")
	dirs := []entry{
		{p.Dir, 0o755, 0, 0},
		{filepath.Join(p.Dir, "conf"), 0o755, 0, 0},
		{filepath.Join(p.Dir, "data"), 0o700, pfUID, 0},
		{filepath.Join(p.Dir, "mail"), 0o755, vuid, vgid},
		{q, 0o755, 0, 0},
		{filepath.Join(q, "pid"), 0o755, 0, 0},
		{filepath.Join(q, "maildrop"), 0o730, pfUID, postdrop},
		{filepath.Join(q, "public"), 0o710, pfUID, postdrop},
	}
	for _, d := range []string{"active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming", "private", "saved", "trace"} {
		dirs = append(dirs, entry{filepath.Join(q, d), 0o700, pfUID, 0})
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d.path, 0o700); err != nil {
			return fmt.Errorf("creating %s: %w", d.path, err)
		}
		if err := os.Chown(d.path, d.uid, d.gid); err != nil {
			return fmt.Errorf("chown %s: %w", d.path, err)
		}
		// Chmod after Chown, which may clear mode bits.
		if err := os.Chmod(d.path, d.mode); err != nil {
			return fmt.Errorf("chmod %s: %w", d.path, err)
		}
	}

	size := opts.MessageSizeLimit
	if size == 0 {
		size = 64 << 20
	}
	conf := filepath.Join(p.Dir, "conf")
	main := []string{
		"compatibility_level = 3.6",
		"queue_directory = " + q,
		"data_directory = " + filepath.Join(p.Dir, "data"),
		// Postfix only writes a maillog_file below an allowed prefix
		// (default /var, /dev/stdout); outside it every command,
		// `postfix check` included, exits 1 and says why only to
		// syslog.
		"maillog_file_prefixes = " + p.Dir,
		"maillog_file = " + filepath.Join(p.Dir, "maillog"),
		"myhostname = " + PostfixHostname,
		"mydestination =",
		"inet_interfaces = 127.0.0.1",
		"inet_protocols = ipv4",
		"mynetworks = 127.0.0.0/8",
		"smtpd_relay_restrictions = permit_mynetworks, reject",
		"smtpd_recipient_restrictions = check_recipient_access regexp:" + filepath.Join(conf, "rcpt_access"),
		// No DNS anywhere: the test host has no resolver to speak of.
		"disable_dns_lookups = yes",
		"smtp_host_lookup = native",
		"smtpd_peername_lookup = no",
		"smtputf8_enable = yes",
		fmt.Sprintf("message_size_limit = %d", size),
		// virtual(8) refuses a message_size_limit above its mailbox
		// limit; the Maildir needs none.
		"virtual_mailbox_limit = 0",
		"mailbox_size_limit = 0",
		// Delivery: one Maildir for the whole domain. virtual(8)
		// forbids $1 substitution from regexp tables, so a
		// per-local-part Maildir is impossible without a hash table
		// of known users; the envelope recipient is in the
		// Delivered-To header virtual(8) adds instead.
		"virtual_mailbox_domains = " + PostfixDomain,
		"virtual_mailbox_base = " + filepath.Join(p.Dir, "mail"),
		"virtual_mailbox_maps = regexp:" + filepath.Join(conf, "vmailbox"),
		fmt.Sprintf("virtual_uid_maps = static:%d", vuid),
		fmt.Sprintf("virtual_gid_maps = static:%d", vgid),
		// Mail for any other domain (bounces to test senders
		// included) is dropped instead of being sent anywhere or
		// waiting in the queue; the log still records it.
		"default_transport = discard:non-test domain discarded by the test upstream",
		// Leave headers as received: no rewriting of addresses and no
		// added Message-ID/Date/From for clients on 127.0.0.1, so a
		// delivered message can be compared byte for byte.
		"local_header_rewrite_clients =",
		"alias_maps =",
		"alias_database =",
		"biff = no",
		// Postfix's own retry waits are minutes long; keep a deferred
		// message from sitting in the queue for a whole test run.
		"queue_run_delay = 1s",
		"minimal_backoff_time = 1s",
		"maximal_backoff_time = 2s",
	}
	if opts.XCLIENT {
		main = append(main, "smtpd_authorized_xclient_hosts = 127.0.0.0/8")
	}
	main = mergeMainCF(main, opts.MainCF)

	// Only the services this set-up can use; no chroot anywhere (the
	// 5th column), since a chroot would need a copy of /etc and the
	// libraries inside the queue directory.
	master := []string{
		p.Addr + " inet n - n - - smtpd",
		"cleanup   unix  n - n - 0 cleanup",
		"qmgr      unix  n - n 300 1 qmgr",
		"rewrite   unix  - - n - - trivial-rewrite",
		"bounce    unix  - - n - 0 bounce",
		"defer     unix  - - n - 0 bounce",
		"trace     unix  - - n - 0 bounce",
		"flush     unix  n - n 1000? 0 flush",
		// smtpd opens its default local_recipient_maps (passwd,
		// aliases) through proxymap even when no domain is local,
		// and hangs before its banner without it.
		"proxymap  unix  - - n - - proxymap",
		"error     unix  - - n - - error",
		"retry     unix  - - n - - error",
		"discard   unix  - - n - - discard",
		"virtual   unix  - n n - - virtual",
		"anvil     unix  - - n - 1 anvil",
		// smtpd takes its TLS entropy from tlsmgr; without it a test that
		// sets smtpd_tls_cert_file gets "disabling TLS support".
		"tlsmgr    unix  - - n 1000? 1 tlsmgr",
		"postlog   unix-dgram n - n - 1 postlogd",
	}

	access := append([]string{}, opts.RecipientAccess...)
	access = append(access,
		// An explicit code: REJECT alone would answer 554
		// (access_map_reject_code), not the 550 a real unknown user
		// gets.
		`/^rejected@example\.test$/ 550 5.1.1 no such user here`,
		`/^tempfail@example\.test$/ DEFER_IF_PERMIT 4.2.0 try later`,
	)

	files := map[string][]string{
		"main.cf":     main,
		"master.cf":   master,
		"rcpt_access": access,
		"vmailbox":    {`/@example\.test$/ ` + PostfixDomain + "/catchall/"},
	}
	for name, lines := range files {
		path := filepath.Join(conf, name)
		// root-owned and not group/world writable, or Postfix
		// complains.
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		// Postfix treats a main.cf modified within the last second
		// or so as being edited and re-reads it every 300 ms until it
		// is older, which would add ~1.5 s to every start.
		past := time.Now().Add(-time.Hour)
		if err := os.Chtimes(path, past, past); err != nil {
			return fmt.Errorf("back-dating %s: %w", path, err)
		}
	}
	return nil
}

// mergeMainCF replaces settings in base by name and appends new ones:
// Postfix would use the last of two settings too, but warn about the
// override in every program's log.
func mergeMainCF(base, extra []string) []string {
	name := func(line string) string {
		n, _, _ := strings.Cut(line, "=")
		return strings.TrimSpace(n)
	}
	out := append([]string{}, base...)
next:
	for _, e := range extra {
		for i, b := range out {
			if name(b) == name(e) {
				out[i] = e
				continue next
			}
		}
		out = append(out, e)
	}
	return out
}

// Start starts the master daemon (again, after Stop) on the same port and
// waits until smtpd answers with a 220 banner. Mail left in the queue by a
// Stop is delivered after the restart.
func (p *Postfix) Start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc != nil {
		p.t.Fatalf("test Postfix %s: Start while running", p.Addr)
	}
	// The master daemon directly, not `postfix start-fg`: see
	// masterProcess for why. -s keeps it in the foreground (Postfix >=
	// 3.4) without requiring PID 1 as -i does.
	cmd := exec.Command(p.master, "-c", p.ConfigDir(), "-s")
	cmd.Dir = p.Dir
	// The master passes MAIL_CONFIG on to its children; set it anyway
	// so nothing ever falls back to /etc/postfix.
	cmd.Env = append(os.Environ(), "MAIL_CONFIG="+p.ConfigDir())
	began := time.Now()
	proc, err := startMaster(cmd)
	if err != nil {
		p.t.Fatalf("starting the test Postfix: %v", err)
	}
	if err := p.waitBanner(proc); err != nil {
		proc.stop(p.Addr)
		mainCF, _ := os.ReadFile(filepath.Join(p.ConfigDir(), "main.cf"))
		p.t.Fatalf("starting the test Postfix on %s: %v\nmaster output:\n%s\nmaillog:\n%s\nmain.cf:\n%s",
			p.Addr, err, proc.Output(), p.Log(), mainCF)
	}
	p.t.Logf("test Postfix on %s ready in %v", p.Addr, time.Since(began).Round(time.Millisecond))
	p.proc = proc
}

// waitBanner waits until smtpd greets with 220, failing early if the
// master exits (a configuration error, typically, explained in the log).
func (p *Postfix) waitBanner(proc *masterProcess) error {
	deadline := time.Now().Add(p.timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-proc.done:
			return fmt.Errorf("master exited during start-up (its reason is in the maillog, or in syslog if it failed before reading main.cf)")
		default:
		}
		last = readBanner(p.Addr)
		if last == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no 220 banner within %v: %w", p.timeout, last)
}

// readBanner connects, expects a 220 greeting and says QUIT.
func readBanner(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading the banner: %w", err)
	}
	if !strings.HasPrefix(line, "220 ") {
		return fmt.Errorf("unexpected banner %q", strings.TrimSpace(line))
	}
	_, _ = c.Write([]byte("QUIT\r\n"))
	return nil
}

// Stop stops the master daemon and all its children (SIGTERM to the
// process group), leaving the queue and Maildir in place. Connections to
// Addr are refused until Start.
func (p *Postfix) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil {
		return
	}
	p.proc.stop(p.Addr)
	p.proc = nil
}

// Running reports whether the master daemon is running.
func (p *Postfix) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil {
		return false
	}
	select {
	case <-p.proc.done:
		return false
	default:
		return true
	}
}

// Log returns the instance's maillog so far. Postfix writes it through
// postlogd, so a line can trail the event it reports by a moment; use
// WaitLog to wait for one.
func (p *Postfix) Log() string {
	b, err := os.ReadFile(filepath.Join(p.Dir, "maillog"))
	if err != nil {
		return ""
	}
	return string(b)
}

// WaitLog waits until the maillog contains substr and returns the log; the
// test fails after timeout.
func (p *Postfix) WaitLog(t testing.TB, substr string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		log := p.Log()
		if strings.Contains(log, substr) {
			return log
		}
		if time.Now().After(deadline) {
			t.Fatalf("test Postfix maillog has no %q after %v:\n%s", substr, timeout, log)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// QueueFiles lists the queue files still in the instance's mail queue
// (incoming, active, deferred, hold, maildrop), relative to the queue
// directory. It reads the directories rather than asking postqueue, which
// is set-gid and so refuses a non-default configuration directory.
func (p *Postfix) QueueFiles(t testing.TB) []string {
	t.Helper()
	q := filepath.Join(p.Dir, "queue")
	var files []string
	for _, sub := range []string{"maildrop", "incoming", "active", "deferred", "hold"} {
		root := filepath.Join(q, sub)
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				// A file can move between queues while we
				// walk.
				if os.IsNotExist(err) {
					return nil
				}
				return err
			}
			if !d.IsDir() {
				rel, _ := filepath.Rel(q, path)
				files = append(files, rel)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("reading the test Postfix queue %s: %v", root, err)
		}
	}
	return files
}

// QueueEmpty reports whether no message is waiting in the queue: every
// message accepted so far has been delivered, discarded or bounced.
func (p *Postfix) QueueEmpty(t testing.TB) bool {
	t.Helper()
	return len(p.QueueFiles(t)) == 0
}

// WaitQueueEmpty waits until the queue is empty; the test fails after
// timeout, listing what is stuck.
func (p *Postfix) WaitQueueEmpty(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		files := p.QueueFiles(t)
		if len(files) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("test Postfix queue not empty after %v: %v\nmaillog:\n%s", timeout, files, p.Log())
		}
		time.Sleep(25 * time.Millisecond)
	}
}
