package limits

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// Alert event names.
const (
	AlertSuspension = "suspension"
	AlertLockout    = "lockout"
)

// AlertEvent is one alert: the JSON body POSTed to --alert-webhook and the
// attributes of its log line.
type AlertEvent struct {
	Event  string     `json:"event"`           // suspension, lockout
	Login  string     `json:"login,omitempty"` // the login concerned (lockout: the last one tried)
	Limit  string     `json:"limit"`           // messages, recipients, rejected-ratio, auth-failures
	Count  int        `json:"count"`           // what was counted within the window
	Max    int        `json:"max"`             // the limit it is compared with
	Window string     `json:"window"`          // e.g. "1h"
	Reason string     `json:"reason,omitempty"`
	Client string     `json:"client,omitempty"` // client address of the attempt that decided it
	Time   time.Time  `json:"time"`
	Until  *time.Time `json:"until,omitempty"` // end of a suspension
	Host   string     `json:"host,omitempty"`  // the Postern instance (--hostname)
}

// AlertConfig configures an Alerter.
type AlertConfig struct {
	// URL receives each event as a JSON POST; "" logs the events only.
	URL string
	// Host names this instance in the events.
	Host string
	// Queue bounds the events waiting to be sent; zero value
	// DefaultAlertQueue. Events beyond it are dropped and counted.
	Queue int
	// Attempts per event and the first retry delay (doubling); zero values
	// DefaultAlertAttempts and DefaultAlertBackoff. Timeout bounds one
	// POST; zero value DefaultAlertTimeout.
	Attempts int
	Backoff  time.Duration
	Timeout  time.Duration
	Client   *http.Client
	Metrics  Metrics
	Log      *slog.Logger
}

// Alerter logs alert events and posts them to a webhook from one
// goroutine (Run), so a slow or dead webhook never holds up a session:
// Send only queues, and drops (and counts) an event when the queue is full.
type Alerter struct {
	cfg   AlertConfig
	queue chan AlertEvent
}

// NewAlerter returns an Alerter; call Run for the webhook to be used.
func NewAlerter(cfg AlertConfig) *Alerter {
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultAlertQueue
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = DefaultAlertAttempts
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultAlertBackoff
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultAlertTimeout
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Timeout}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	return &Alerter{cfg: cfg, queue: make(chan AlertEvent, cfg.Queue)}
}

// Send logs ev as a structured line and queues it for the webhook.
func (a *Alerter) Send(ev AlertEvent) {
	if a == nil {
		return
	}
	ev.Host = a.cfg.Host
	attrs := []any{"event", ev.Event, "login", ev.Login, "limit", ev.Limit, "count", ev.Count,
		"max", ev.Max, "window", ev.Window, "client", ev.Client}
	if ev.Reason != "" {
		attrs = append(attrs, "reason", ev.Reason)
	}
	if ev.Until != nil {
		attrs = append(attrs, "until", ev.Until.UTC().Format(time.RFC3339))
	}
	a.cfg.Log.Warn("alert", attrs...)
	if a.cfg.URL == "" {
		return
	}
	select {
	case a.queue <- ev:
	default:
		a.cfg.Metrics.AlertDropped()
		a.cfg.Log.Error("alert dropped: webhook queue full", "event", ev.Event, "login", ev.Login)
	}
}

// Run posts queued events until ctx ends.
func (a *Alerter) Run(ctx context.Context) {
	if a.cfg.URL == "" {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-a.queue:
			a.deliver(ctx, ev)
		}
	}
}

// deliver posts ev, retrying with a doubling delay; a 2xx ends it, and so
// does a 4xx other than 408/429 (the webhook refuses it; retrying will not
// help).
func (a *Alerter) deliver(ctx context.Context, ev AlertEvent) {
	body, err := json.Marshal(ev)
	if err != nil {
		a.cfg.Log.Error("alert: encoding the event", "err", err)
		return
	}
	delay := a.cfg.Backoff
	for attempt := 1; ; attempt++ {
		err := a.post(ctx, body)
		if err == nil {
			a.cfg.Metrics.AlertSent()
			return
		}
		if _, final := err.(finalError); final || attempt >= a.cfg.Attempts {
			a.cfg.Metrics.AlertDropped()
			a.cfg.Log.Error("alert dropped: webhook failed", "event", ev.Event, "login", ev.Login,
				"attempts", attempt, "err", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay *= 2
	}
}

type finalError struct{ error }

func (a *Alerter) post(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return finalError{fmt.Errorf("building the webhook request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "postern-alerts")
	resp, err := a.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("posting to the webhook: %w", err)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode/100 == 4 && resp.StatusCode != 408 && resp.StatusCode != 429:
		return finalError{fmt.Errorf("webhook answered %s", resp.Status)}
	}
	return fmt.Errorf("webhook answered %s", resp.Status)
}
