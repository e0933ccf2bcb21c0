package control

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/postern/postern/limits"
)

// Status asks the instance serving on the socket sock for login's counters
// and suspension.
func Status(ctx context.Context, sock, login string) (limits.LoginStatus, error) {
	var st limits.LoginStatus
	err := request(ctx, sock, http.MethodGet, pathStatus, login, &st)
	return st, err
}

// Unsuspend asks the instance serving on the socket sock to lift login's
// suspension.
func Unsuspend(ctx context.Context, sock, login string) (UnsuspendResult, error) {
	var res UnsuspendResult
	err := request(ctx, sock, http.MethodPost, pathUnsuspend, login, &res)
	return res, err
}

// request sends one request to the control socket and decodes the JSON
// answer into out.
func request(ctx context.Context, sock, method, path, login string, out any) error {
	client := &http.Client{Timeout: Timeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, method, "http://postern"+path+"?login="+url.QueryEscape(login), nil)
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
