package serve

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/postern/postern/limits"
	"github.com/postern/postern/limits/state"
	"github.com/postern/postern/policy"
	"github.com/postern/postern/proxy"
)

// limitSetup is what Build gets from the limit settings.
type limitSetup struct {
	store      state.Store
	limits     *limits.Limits
	alerts     *limits.Alerter
	limitFile  string // path, reloaded on SIGHUP
	headerFrom policy.HeaderFromMode
}

// buildLimits validates the limit settings and builds the policy over
// store.
func buildLimits(cfg LimitConfig, hostname string, store state.Store, metrics *proxy.Metrics, log *slog.Logger) (*limitSetup, error) {
	msgs, err := limits.ParseRate(cfg.Messages)
	if err != nil {
		return nil, fmt.Errorf("--limit-messages: %w", err)
	}
	rcpts, err := limits.ParseRate(cfg.Recipients)
	if err != nil {
		return nil, fmt.Errorf("--limit-recipients: %w", err)
	}
	ratio, err := parsePercent(cfg.SuspendRejectedRatio)
	if err != nil {
		return nil, fmt.Errorf("--suspend-rejected-ratio: %w", err)
	}
	if cfg.SuspendAfter < 0 || cfg.SuspendFor <= 0 {
		return nil, errors.New("--suspend-after must not be negative and --suspend-for must be positive")
	}
	headerFrom, err := policy.ParseHeaderFromMode(cfg.CheckHeaderFrom)
	if err != nil {
		return nil, err
	}
	ls := &limitSetup{store: store, limitFile: cfg.File, headerFrom: headerFrom}
	var file *limits.LimitFile
	if ls.limitFile != "" {
		if file, err = limits.LoadLimitFile(ls.limitFile); err != nil {
			return nil, err
		}
	}
	webhook := cfg.AlertWebhook
	if webhook != "" && !strings.HasPrefix(webhook, "http://") && !strings.HasPrefix(webhook, "https://") {
		return nil, fmt.Errorf("--alert-webhook %q: want an http:// or https:// URL", webhook)
	}
	ls.alerts = limits.NewAlerter(limits.AlertConfig{URL: webhook, Host: hostname, Metrics: metrics, Log: log})
	ls.limits = limits.NewLimits(limits.LimitsConfig{
		Store:                  store,
		Messages:               msgs,
		Recipients:             rcpts,
		SuspendAfter:           cfg.SuspendAfter,
		SuspendRejectedPercent: ratio,
		SuspendFor:             cfg.SuspendFor,
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
