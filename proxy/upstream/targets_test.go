package upstream

import (
	"testing"
	"time"
)

// TestTargetsOrder: healthy upstreams in the order of configuration, then
// those in their hold-down (a last resort); a hold-down ends by itself and
// on the next answer.
func TestTargetsOrder(t *testing.T) {
	a := NewTarget(Config{Addr: "a:25"}, nil, time.Minute)
	b := NewTarget(Config{Addr: "b:25"}, nil, time.Minute)
	c := NewTarget(Config{Addr: "c:25"}, nil, 0) // DefaultHoldDown
	ts := Targets{a, b, c}
	now := time.Now()
	order := func(at time.Time) string {
		s := ""
		for _, t := range ts.Order(at) {
			s += t.Addr() + " "
		}
		return s
	}
	if got := order(now); got != "a:25 b:25 c:25 " {
		t.Errorf("all healthy: %q", got)
	}
	a.Failed(now)
	if got := order(now); got != "b:25 c:25 a:25 " {
		t.Errorf("a failed: %q, want a last", got)
	}
	if got := order(now.Add(time.Minute)); got != "a:25 b:25 c:25 " {
		t.Errorf("a's hold-down over: %q", got)
	}
	c.Failed(now)
	if c.Healthy(now.Add(DefaultHoldDown - time.Second)) {
		t.Errorf("c healthy within the default hold-down")
	}
	a.Failed(now)
	b.Failed(now)
	if got := order(now); got != "a:25 b:25 c:25 " {
		t.Errorf("all failed: %q, want every one in order (a last resort)", got)
	}
	b.Answered()
	if got := order(now); got != "b:25 a:25 c:25 " {
		t.Errorf("b answered: %q, want b first", got)
	}
}
