package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/postern/postern/limits"
)

// The control socket: `serve` answers `postern status` and `postern
// unsuspend` on a unix socket. A unix socket rather than a path on the
// --metrics listener: its file mode (0600) is the access control, with no
// token to manage, and it is never reachable from the network (the metrics
// listener usually is, by Prometheus). With --state redis the subcommands
// could read Redis themselves; the socket works with every store.

// controlTimeout bounds one control request, both sides.
const controlTimeout = 10 * time.Second

// listenControl binds the control socket, or returns nil (logged) when the
// default path's directory does not exist or the flag is "none"
// (bindControl: race-free, stale sockets replaced).
func listenControl(c *cli.Context, log *slog.Logger) (net.Listener, error) {
	path := c.String("control-socket")
	if path == "" || path == "none" {
		return nil, nil
	}
	if _, err := os.Stat(filepath.Dir(path)); err != nil && !c.IsSet("control-socket") {
		log.Warn("control socket disabled: its directory is missing (set --control-socket)", "path", path)
		return nil, nil
	}
	ln, err := bindControl(path)
	if err != nil {
		return nil, err
	}
	log.Info("control socket listening", "path", path)
	return ln, nil
}

// serveControl answers on ln until ctx ends.
func serveControl(ctx context.Context, ln net.Listener, limits *limits.Limits, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		login := r.URL.Query().Get("login")
		if login == "" {
			http.Error(w, "login missing", http.StatusBadRequest)
			return
		}
		st, err := limits.Status(r.Context(), login)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, st)
	})
	mux.HandleFunc("POST /v1/unsuspend", func(w http.ResponseWriter, r *http.Request) {
		login := r.URL.Query().Get("login")
		if login == "" {
			http.Error(w, "login missing", http.StatusBadRequest)
			return
		}
		was, err := limits.Unsuspend(r.Context(), login)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, unsuspendResult{Login: strings.ToLower(login), WasSuspended: was})
	})
	srv := &http.Server{Handler: http.TimeoutHandler(mux, controlTimeout, "timeout\n"),
		ReadHeaderTimeout: controlTimeout, ReadTimeout: controlTimeout, WriteTimeout: 2 * controlTimeout,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	// Closing ln (srv.Close) removes the socket file (controlListener).
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("control socket: %w", err)
	}
	return nil
}

type unsuspendResult struct {
	Login        string `json:"login"`
	WasSuspended bool   `json:"was_suspended"`
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// controlRequest sends one request to the control socket and decodes the
// JSON answer into out.
func controlRequest(c *cli.Context, method, path, login string, out any) error {
	sock := c.String("control-socket")
	client := &http.Client{Timeout: controlTimeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	req, err := http.NewRequestWithContext(c.Context, method, "http://postern"+path+"?login="+url.QueryEscape(login), nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("asking the running postern on %s (is `serve` running with this --control-socket?): %w", sock, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("postern answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// statusFlags: `status` and `unsuspend` take serve's flags (and its
// --config file), so the same settings name the same counters: with --state
// redis://… they read Redis themselves, with memory they ask the running
// instance on --control-socket.
func statusFlags() []cli.Flag { return serveFlags() }

// withLimits runs fn on the login's limits: over Redis directly, or nil
// for "ask the control socket".
func withLimits(c *cli.Context, fn func(*limits.Limits) error) error {
	if c.String("state") == stateMemory {
		return fn(nil)
	}
	log, err := newLogger(c.App.ErrWriter, c.String("log-format"), "warn")
	if err != nil {
		return err
	}
	f, _, err := buildState(c, log)
	if err != nil {
		return err
	}
	defer f.Close()
	// The Fallback answers from this command's (empty) memory when Redis
	// fails: Redis must answer before and still be in use after.
	ctx, cancel := context.WithTimeout(c.Context, controlTimeout)
	defer cancel()
	if err := f.Check(ctx); err != nil {
		return fmt.Errorf("--state: redis does not answer: %w", err)
	}
	ls, err := buildLimits(c, c.String("hostname"), f, nil, log)
	if err != nil {
		return err
	}
	if err := fn(ls.limits); err != nil {
		return err
	}
	if f.Degraded() {
		return errors.New("--state: redis failed during the request; nothing shown")
	}
	return nil
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show a login's sending counters and suspension (from Redis with --state redis://, else asks the running instance); LOGIN is the account's canonical identity (the login= of the log lines)",
		ArgsUsage: "LOGIN",
		Flags:     statusFlags(),
		Before:    applyConfigFile,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("usage: postern status [flags] LOGIN", 2)
			}
			login, err := statusLogin(c, c.Args().First())
			if err != nil {
				return err
			}
			var st limits.LoginStatus
			err = withLimits(c, func(l *limits.Limits) error {
				if l == nil {
					return controlRequest(c, http.MethodGet, "/v1/status", login, &st)
				}
				ctx, cancel := context.WithTimeout(c.Context, controlTimeout)
				defer cancel()
				var err error
				st, err = l.Status(ctx, login)
				return err
			})
			if err != nil {
				return err
			}
			printStatus(c.App.Writer, st)
			printNothingRecorded(c.App.Writer, st)
			return nil
		},
	}
}

func printStatus(w io.Writer, st limits.LoginStatus) {
	fmt.Fprintf(w, "login %s\n", st.Login)
	for _, l := range []struct {
		name string
		ls   limits.LimitStatus
	}{{limits.LimitMessages, st.Messages}, {limits.LimitRecipients, st.Recipients}} {
		if l.ls.Limit == "*" {
			fmt.Fprintf(w, "%s: no limit\n", l.name)
			continue
		}
		fmt.Fprintf(w, "%s: %d of %s, %d attempts over the limit\n", l.name, l.ls.Count, l.ls.Limit, l.ls.Over)
	}
	fmt.Fprintf(w, "recipients refused by the upstream in the last %s: %d (accepted %d)\n",
		st.Refused.Window, st.Refused.Refused, st.Refused.Accepted)
	if s := st.Suspension; s != nil {
		fmt.Fprintf(w, "suspended since %s until %s: %s\n",
			s.Since.UTC().Format(time.RFC3339), s.Until.UTC().Format(time.RFC3339), s.Reason)
	} else {
		fmt.Fprintln(w, "not suspended")
	}
}

func unsuspendCommand() *cli.Command {
	return &cli.Command{
		Name:      "unsuspend",
		Usage:     "lift a login's suspension (in Redis with --state redis://, else asks the running instance); LOGIN is the account's canonical identity (the login= of the log lines)",
		ArgsUsage: "LOGIN",
		Flags:     statusFlags(),
		Before:    applyConfigFile,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("usage: postern unsuspend [flags] LOGIN", 2)
			}
			login, err := statusLogin(c, c.Args().First())
			if err != nil {
				return err
			}
			var res unsuspendResult
			err = withLimits(c, func(l *limits.Limits) error {
				if l == nil {
					return controlRequest(c, http.MethodPost, "/v1/unsuspend", login, &res)
				}
				ctx, cancel := context.WithTimeout(c.Context, controlTimeout)
				defer cancel()
				was, err := l.Unsuspend(ctx, login)
				res = unsuspendResult{Login: strings.ToLower(login), WasSuspended: was}
				return err
			})
			if err != nil {
				return err
			}
			if res.WasSuspended {
				fmt.Fprintf(c.App.Writer, "%s unsuspended\n", res.Login)
			} else {
				// Counters are kept under the account's canonical
				// identity only: another spelling finds nothing.
				fmt.Fprintf(c.App.Writer, "%s was not suspended (its over-limit attempts are forgotten; LOGIN is the account's canonical identity, the login= of the log lines)\n", res.Login)
			}
			return nil
		},
	}
}
