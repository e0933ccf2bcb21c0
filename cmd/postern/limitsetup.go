package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/postern/postern/limits"
	"github.com/postern/postern/limits/state"
	"github.com/postern/postern/policy"
	"github.com/postern/postern/proxy"
)

// limitFlags are the flags of the sending limits, suspensions and alerts
// (issue 12), part of serveFlags.
func limitFlags() []cli.Flag {
	return []cli.Flag{
		str("limit-messages", limits.DefaultLimitMessages.String(), "messages per login, N/WINDOW sliding (counted at MAIL; given back only when the upstream refuses); over it MAIL gets 451 4.7.1; * = no limit"),
		str("limit-recipients", limits.DefaultLimitRecipients.String(), "recipients accepted by the upstream per login, N/WINDOW sliding; the RCPT crossing it gets 451 4.7.1; * = no limit"),
		str("limit-file", "", "per-login or per-@domain overrides: 'LOGIN|@DOMAIN messages=N/WINDOW recipients=N/WINDOW' or 'LOGIN *' (no limit); reloaded on SIGHUP"),
		&cli.IntFlag{Name: "suspend-after", Value: limits.DefaultSuspendAfter, Usage: "suspend a login whose attempts reach this many times a limit within its window (attempts over the limit count); 0 = never", EnvVars: env("suspend-after")},
		str("suspend-rejected-ratio", strconv.Itoa(limits.DefaultSuspendRejectedRatio)+"%", fmt.Sprintf("suspend a login when more than this share of at least %d recipients within %s were refused by the upstream; 0 = never", limits.DefaultSuspendRejectedMin, strings.TrimSuffix(limits.DefaultSuspendRejectedWindow.String(), "0m0s"))),
		dur("suspend-for", limits.DefaultSuspendFor, "how long a suspension lasts (AUTH answers 535 5.7.8 meanwhile); 'postern unsuspend LOGIN' lifts it earlier"),
		str("alert-webhook", "", "URL receiving a JSON POST on each suspension and lockout (retried, never blocking a session)"),
		str("check-header-from", string(policy.DefaultHeaderFromMode), "off|warn|enforce: the From: header's addresses must be owned by the login (sender map rules); enforce refuses with 553 5.7.1 before the upstream gets the message"),
		str("control-socket", limits.DefaultControlSocket, "unix socket (mode 0600) answering 'postern status' and 'postern unsuspend'; 'none' disables; the default is skipped if its directory does not exist"),
	}
}

// limitSetup is what buildInstance gets from the limit flags.
type limitSetup struct {
	store      state.Store
	limits     *limits.Limits
	alerts     *limits.Alerter
	limitFile  string // path, reloaded on SIGHUP
	headerFrom policy.HeaderFromMode
}

// buildLimits validates the limit flags and builds the policy over store.
func buildLimits(c *cli.Context, hostname string, store state.Store, metrics *proxy.Metrics, log *slog.Logger) (*limitSetup, error) {
	msgs, err := limits.ParseRate(c.String("limit-messages"))
	if err != nil {
		return nil, fmt.Errorf("--limit-messages: %w", err)
	}
	rcpts, err := limits.ParseRate(c.String("limit-recipients"))
	if err != nil {
		return nil, fmt.Errorf("--limit-recipients: %w", err)
	}
	ratio, err := parsePercent(c.String("suspend-rejected-ratio"))
	if err != nil {
		return nil, fmt.Errorf("--suspend-rejected-ratio: %w", err)
	}
	if c.Int("suspend-after") < 0 || c.Duration("suspend-for") <= 0 {
		return nil, errors.New("--suspend-after must not be negative and --suspend-for must be positive")
	}
	headerFrom, err := policy.ParseHeaderFromMode(c.String("check-header-from"))
	if err != nil {
		return nil, err
	}
	ls := &limitSetup{store: store, limitFile: c.String("limit-file"), headerFrom: headerFrom}
	var file *limits.LimitFile
	if ls.limitFile != "" {
		if file, err = limits.LoadLimitFile(ls.limitFile); err != nil {
			return nil, err
		}
	}
	webhook := c.String("alert-webhook")
	if webhook != "" && !strings.HasPrefix(webhook, "http://") && !strings.HasPrefix(webhook, "https://") {
		return nil, fmt.Errorf("--alert-webhook %q: want an http:// or https:// URL", webhook)
	}
	ls.alerts = limits.NewAlerter(limits.AlertConfig{URL: webhook, Host: hostname, Metrics: metrics, Log: log})
	ls.limits = limits.NewLimits(limits.LimitsConfig{
		Store:                  store,
		Messages:               msgs,
		Recipients:             rcpts,
		SuspendAfter:           c.Int("suspend-after"),
		SuspendRejectedPercent: ratio,
		SuspendFor:             c.Duration("suspend-for"),
		Alerts:                 ls.alerts,
		Metrics:                metrics,
		Log:                    log,
	})
	ls.limits.SetFile(file)
	return ls, nil
}

// parsePercent parses "50%", "50" or "0.5" as a whole per cent from 0 to 100.
func parsePercent(s string) (int, error) {
	s = strings.TrimSpace(s)
	f, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err == nil && !strings.HasSuffix(s, "%") && f > 0 && f < 1 {
		f *= 100
	}
	if err != nil || f < 0 || f > 100 {
		return 0, fmt.Errorf("%q: want a share such as 50%%", s)
	}
	return int(f + 0.5), nil
}

// reload re-reads the limit file; a broken one keeps the old.
func (ls *limitSetup) reload(log *slog.Logger) bool {
	if ls.limitFile == "" {
		return true
	}
	f, err := limits.LoadLimitFile(ls.limitFile)
	if err != nil {
		log.Error("reload: limit file kept as before", "err", err)
		return false
	}
	ls.limits.SetFile(f)
	return true
}
