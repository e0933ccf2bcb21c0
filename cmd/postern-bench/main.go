// Command postern-bench is the load generator of Postern's side-by-side
// benchmark (bench/run.sh), and the two small servers the benchmark needs.
//
//	postern-bench [load flags]                 run a workload against --addr
//	postern-bench sink --listen ADDR           the common upstream: accepts and discards
//	                   [--tls-cert F --tls-key F]  ... and offers STARTTLS (the sink-starttls ceiling)
//	postern-bench authhttp --listen ADDR --users FILE --upstream IP:PORT [--fast]
//	                                           nginx mail proxy's auth_http service
//	postern-bench storm-users --n N --users FILE --logins FILE
//	                                           W5's N distinct bcrypt users and their passwords
//	postern-bench report --in FILE --out FILE --svg FILE
//	                                           medians and ratios as markdown, W1/W2/W2x chart
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "postern-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "sink":
			return runSinkCmd(ctx, args[1:], stderr)
		case "authhttp":
			return runAuthHTTPCmd(ctx, args[1:], stderr)
		case "report":
			return runReportCmd(args[1:], stderr)
		case "storm-users":
			return runStormUsersCmd(args[1:], stderr)
		case "load":
			args = args[1:]
		}
	}
	return runLoadCmd(ctx, args, stdout, stderr)
}

func runLoadCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("postern-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c loadConfig
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:587", "server `HOST:PORT`")
	fs.StringVar(&c.Mode, "mode", "starttls", "starttls, tls (implicit, RFC 8314) or plain")
	fs.StringVar(&c.User, "user", "", "AUTH PLAIN login (empty: no AUTH)")
	fs.StringVar(&c.Password, "password", "", "AUTH PLAIN password")
	fs.StringVar(&c.From, "from", "bench@example.test", "MAIL FROM address")
	fs.StringVar(&c.To, "to", "rcpt@example.net", "RCPT TO address")
	fs.IntVar(&c.Concurrency, "concurrency", 50, "connections open at the same time")
	fs.IntVar(&c.Connections, "connections", 500, "connections in total")
	fs.IntVar(&c.MessagesPerConn, "messages-per-conn", 10, "messages sent on each connection")
	fs.IntVar(&c.Size, "size", 4096, "message size in bytes, headers included")
	fs.DurationVar(&c.Duration, "duration", time.Minute, "cap: no connection or message starts after this; all are closed --timeout later")
	fs.BoolVar(&c.Pipelining, "pipelining", false, "send MAIL, RCPT and DATA without waiting (RFC 2920; raw client): --shape pipelining")
	fs.StringVar(&c.Shape, "shape", "", "client `SHAPE`: how commands and the message are written, "+shapeNames()+" (default waiting: go-smtp's client, a write and a wait per command, the message with its dot in one write)")
	fs.BoolVar(&c.Insecure, "insecure", false, "do not verify the server certificate")
	fs.StringVar(&c.ServerName, "server-name", "", "TLS server name (default: the host of --addr)")
	fs.BoolVar(&c.TLSResume, "tls-resume", false, "resume TLS sessions (shared client session cache)")
	tlsGroups := fs.String("tls-groups", "", "key exchange `GROUPS` the client offers, comma-separated: "+knownTLSGroups()+" (empty: Go's default, which includes x25519mlkem768)")
	fs.DurationVar(&c.Timeout, "timeout", 30*time.Second, "connect and per-reply timeout")
	fs.IntVar(&c.Idle, "idle", 0, "W4: open N sessions, AUTH, hold them idle for --hold, then QUIT (no messages)")
	fs.DurationVar(&c.Hold, "hold", 10*time.Second, "how long --idle sessions are held")
	fs.IntVar(&c.RSSPID, "rss-pid", 0, "sample this `PID`'s VmRSS/VmHWM (before, during --idle, after)")
	cpuPIDs := fs.String("cpu-pids", "", "sample the CPU time (/proc utime+stime) of these `PIDS`' process trees before and after; comma-separated")
	fs.StringVar(&c.Label, "label", "", "name of the peer, copied into the JSON line")
	fs.StringVar(&c.Workload, "workload", "", "name of the workload, copied into the JSON line")
	loginsFile := fs.String("logins", "", "W5: `FILE` of login:password lines; connection i logs in as line i (mod the count), overriding --user")
	quiet := fs.Bool("json", false, "print only the JSON line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *loginsFile != "" {
		l, err := readLogins(*loginsFile)
		if err != nil {
			return err
		}
		c.Logins = l
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	groups, err := parseTLSGroups(*tlsGroups)
	if err != nil {
		return err
	}
	c.TLSGroups = groups
	pids, err := parsePIDs(*cpuPIDs)
	if err != nil {
		return err
	}
	c.CPUPIDs = pids
	s, err := runLoad(ctx, c)
	if err != nil {
		return err
	}
	if *quiet {
		return s.writeJSON(stdout)
	}
	return s.write(stdout)
}

func runSinkCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("postern-bench sink", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("listen", "127.0.0.1:2500", "`ADDR` to listen on")
	cert := fs.String("tls-cert", "", "with --tls-key: offer STARTTLS with this certificate (the sink-starttls ceiling)")
	key := fs.String("tls-key", "", "private key of --tls-cert")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var tc *tls.Config
	if *cert != "" || *key != "" {
		pair, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			return fmt.Errorf("sink: %w", err)
		}
		tc = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	}
	s, err := startSinkTLS(*addr, tc, false)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "sink listening on %s\n", s.Addr())
	<-ctx.Done()
	s.Close()
	fmt.Fprintf(stderr, "sink: %d messages, %d bytes\n", s.messages.Load(), s.bytes.Load())
	return nil
}

func runAuthHTTPCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("postern-bench authhttp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("listen", "127.0.0.1:9180", "`ADDR` to listen on")
	users := fs.String("users", "", "passwd-file with bcrypt hashes (login:{BLF-CRYPT}$2y$...)")
	upstream := fs.String("upstream", "", "`IP:PORT` nginx is sent to after a successful login")
	fast := fs.Bool("fast", false, "answer from memory: bcrypt once per login and password, then a comparison in memory (nginx-fastauth, its best case)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	h, err := newAuthHTTP(*users, *upstream)
	if h != nil {
		h.fast = *fast
	}
	if err != nil {
		return err
	}
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	fmt.Fprintf(stderr, "auth_http listening on %s\n", *addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
