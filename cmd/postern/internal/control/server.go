package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/postern/postern/limits"
)

// Timeout bounds one control request, both sides.
const Timeout = 10 * time.Second

// The requests, as paths of the socket's HTTP server.
const (
	pathStatus    = "/v1/status"
	pathUnsuspend = "/v1/unsuspend"
)

// Listen binds the control socket at path, or returns nil (logged) when
// path is "" or "none", or is the default (not explicit) and its directory
// does not exist (Bind: race-free, stale sockets replaced).
func Listen(path string, explicit bool, log *slog.Logger) (net.Listener, error) {
	if path == "" || path == "none" {
		return nil, nil
	}
	if _, err := os.Stat(filepath.Dir(path)); err != nil && !explicit {
		log.Warn("control socket disabled: its directory is missing (set --control-socket)", "path", path)
		return nil, nil
	}
	ln, err := Bind(path)
	if err != nil {
		return nil, err
	}
	log.Info("control socket listening", "path", path)
	return ln, nil
}

// Accounts is what the socket answers about: the sending limits.
type Accounts interface {
	Status(ctx context.Context, login string) (limits.LoginStatus, error)
	Unsuspend(ctx context.Context, login string) (bool, error)
}

// Serve answers on ln until ctx ends.
func Serve(ctx context.Context, ln net.Listener, accounts Accounts, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+pathStatus, func(w http.ResponseWriter, r *http.Request) {
		login := r.URL.Query().Get("login")
		if login == "" {
			http.Error(w, "login missing", http.StatusBadRequest)
			return
		}
		st, err := accounts.Status(r.Context(), login)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, st)
	})
	mux.HandleFunc("POST "+pathUnsuspend, func(w http.ResponseWriter, r *http.Request) {
		login := r.URL.Query().Get("login")
		if login == "" {
			http.Error(w, "login missing", http.StatusBadRequest)
			return
		}
		was, err := accounts.Unsuspend(r.Context(), login)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, UnsuspendResult{Login: strings.ToLower(login), WasSuspended: was})
	})
	srv := &http.Server{Handler: http.TimeoutHandler(mux, Timeout, "timeout\n"),
		ReadHeaderTimeout: Timeout, ReadTimeout: Timeout, WriteTimeout: 2 * Timeout,
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

// UnsuspendResult is the answer to an unsuspend request.
type UnsuspendResult struct {
	Login        string `json:"login"`
	WasSuspended bool   `json:"was_suspended"`
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
