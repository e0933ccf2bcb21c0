package limits

import "errors"

// ErrLimitReached is a message or recipient over its login's sending limit;
// the SMTP side answers it with its "451 4.7.1 Sending limit reached" reply.
var ErrLimitReached = errors.New("sending limit reached")

// Metrics counts what the limits and the alerts decide. proxy.Metrics
// implements it; nil in a config counts nothing.
type Metrics interface {
	LimitReached(limit string) // a message or recipient refused over a limit
	Suspended(limit string)    // a login suspended, by the limit that did it
	AlertSent()
	AlertDropped()
}

type noMetrics struct{}

func (noMetrics) LimitReached(string) {}
func (noMetrics) Suspended(string)    {}
func (noMetrics) AlertSent()          {}
func (noMetrics) AlertDropped()       {}
