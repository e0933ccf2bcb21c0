package ledger

import (
	"strings"
	"testing"
	"time"
)

// The accounting on made-up evidence: it must fail a lost message and an
// unexplained copy, and accept only the copies the logs explain.

func acked(id int, via, q string) attempt {
	return attempt{ID: id, Try: 1, Via: via, Stage: "done", Reply: "250 2.0.0 Ok: queued as " + q}
}

func TestAccountBalanced(t *testing.T) {
	ev := evidence{N: 2,
		Attempts: []attempt{acked(1, "r0.ledger.test", "Q1"), acked(2, "r1.ledger.test", "Q2")},
		Copies: []delivered{
			{Mailbox: "A", ID: 1, QueueID: "Q1", Replica: "r0.ledger.test", PosternID: "P1"},
			{Mailbox: "B", ID: 2, QueueID: "Q2", Replica: "r1.ledger.test", PosternID: "P2"},
		}}
	res := account(ev)
	if len(res.Failures) > 0 || res.Line() != "ledger: 2 sent, 2 delivered, 0 lost, 0 duplicates (0 explained), 0 faults" {
		t.Errorf("balanced ledger: %s, failures %q", res.Line(), res.Failures)
	}
}

func TestAccountLost(t *testing.T) {
	// 1 acknowledged as Q1 and not delivered; 2 acknowledged as Q2 but
	// only another copy (Q9) is there: both lost.
	ev := evidence{N: 2,
		Attempts: []attempt{acked(1, "r0.ledger.test", "Q1"), acked(2, "r0.ledger.test", "Q2")},
		Copies:   []delivered{{Mailbox: "A", ID: 2, QueueID: "Q9", Replica: "r0.ledger.test", PosternID: "P9"}}}
	res := account(ev)
	if res.Lost != 2 {
		t.Errorf("lost %d, want 2: %s", res.Lost, res.Line())
	}
	if !strings.Contains(strings.Join(res.Failures, "\n"), "000001 LOST") {
		t.Errorf("the failures do not name message 000001: %q", res.Failures)
	}
}

func TestAccountNeverSent(t *testing.T) {
	ev := evidence{N: 1, Attempts: []attempt{{ID: 1, Try: 1, Via: "r0.ledger.test", Stage: "rcpt", Reply: "550 5.1.1 no"}}}
	res := account(ev)
	if len(res.Failures) != 1 || !strings.Contains(res.Failures[0], `550 5.1.1 no`) {
		t.Errorf("a message given up on 5xx: failures %q, want one naming its reply", res.Failures)
	}
}

func TestAccountDuplicates(t *testing.T) {
	const r0 = "r0.ledger.test"
	now := time.Now()
	broken := attempt{ID: 1, Try: 1, Via: r0, Stage: "dot", Err: "EOF", At: now.Add(time.Millisecond)}
	deferred := attempt{ID: 1, Try: 1, Via: r0, Stage: "dot", Reply: "451 4.4.2 upstream failed", At: now.Add(time.Millisecond)}
	logs := map[string]string{r0: strings.Join([]string{
		`level=INFO msg="message accepted" session=S id=PX reply="250 2.0.0 Ok: queued as QX" upstream=A`,
		`level=WARN msg="message rejected" session=S id=PY reply="451 4.4.2 upstream failed" err="EOF"`,
		`level=WARN msg="message rejected" session=S id=PR reply="554 5.7.1 no" err="no"`,
	}, "\n")}
	kill := fault{Kind: "kill", Target: r0, Start: now, End: now.Add(time.Second)}
	drain := fault{Kind: "drain", Target: r0, Start: now, End: now.Add(time.Second)}
	// A kill an hour earlier explains nothing of this attempt.
	oldKill := fault{Kind: "kill", Target: r0, Start: now.Add(-time.Hour), End: now.Add(-time.Hour)}
	stopA := fault{Kind: "postfix", Target: "A", Start: now.Add(-10 * time.Second), End: now.Add(time.Second)}
	stopALater := fault{Kind: "postfix", Target: "A", Start: now.Add(time.Minute), End: now.Add(2 * time.Minute)}
	for _, c := range []struct {
		name      string
		tries     []attempt
		extra     delivered
		faults    []fault
		explained bool
	}{
		{"reply lost after the upstream's 250, replica killed", []attempt{broken}, delivered{QueueID: "QX", PosternID: "PX"}, []fault{kill}, true},
		{"reply lost after the upstream's 250, replica drained", []attempt{broken}, delivered{QueueID: "QX", PosternID: "PX"}, []fault{drain}, true},
		{"reply lost without a fault", []attempt{broken}, delivered{QueueID: "QX", PosternID: "PX"}, nil, false},
		{"accepted, but the client got a reply", []attempt{deferred}, delivered{QueueID: "QX", PosternID: "PX"}, []fault{kill}, false},
		{"upstream's 250 lost, client got 4xx", []attempt{deferred}, delivered{QueueID: "QY", PosternID: "PY"}, []fault{stopA}, true},
		{"upstream's 250 lost, client's reply too", []attempt{broken}, delivered{QueueID: "QY", PosternID: "PY"}, []fault{stopA}, true},
		{"upstream's 250 lost without a stop", []attempt{deferred}, delivered{QueueID: "QY", PosternID: "PY"}, []fault{kill}, false},
		{"refused with 5xx", []attempt{deferred}, delivered{QueueID: "QR", PosternID: "PR"}, []fault{stopA}, false},
		{"replica killed before logging", []attempt{broken}, delivered{QueueID: "QZ", PosternID: "PZ"}, []fault{kill}, true},
		{"no log line, drained", []attempt{broken}, delivered{QueueID: "QZ", PosternID: "PZ"}, []fault{drain}, false},
		{"no log line and no kill", []attempt{broken}, delivered{QueueID: "QZ", PosternID: "PZ"}, nil, false},
		{"no log line and a kill long before", []attempt{broken}, delivered{QueueID: "QZ", PosternID: "PZ"}, []fault{oldKill}, false},
		{"no attempt broke after its dot", nil, delivered{QueueID: "QX", PosternID: "PX"}, []fault{kill}, false},
		{"Postfix redelivery after its stop", nil, delivered{QueueID: "Q1", PosternID: "P1", Written: now.Add(2 * time.Second)}, []fault{stopA}, true},
		{"Postfix redelivery without a stop", nil, delivered{QueueID: "Q1", PosternID: "P1", Written: now.Add(2 * time.Second)}, nil, false},
		{"Postfix redelivery, stopped only later", nil, delivered{QueueID: "Q1", PosternID: "P1", Written: now.Add(2 * time.Second)}, []fault{stopALater}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			extra := c.extra
			extra.Mailbox, extra.ID, extra.Replica = "A", 1, r0
			ev := evidence{N: 1, Faults: c.faults, PosternLogs: logs,
				Attempts: append(append([]attempt{}, c.tries...), acked(1, r0, "Q1")),
				Copies:   []delivered{extra, {Mailbox: "A", ID: 1, QueueID: "Q1", Replica: r0, PosternID: "P1", Written: now}}}
			res := account(ev)
			if res.Duplicates != 1 || res.Lost != 0 {
				t.Fatalf("%s, want 1 duplicate, 0 lost", res.Line())
			}
			if got := res.Explained == 1 && len(res.Failures) == 0; got != c.explained {
				t.Errorf("explained %v, want %v: %s\nexplanations %q\nfailures %q", got, c.explained, res.Line(), res.Explanations, res.Failures)
			}
		})
	}
}

func TestAccountStranger(t *testing.T) {
	ev := evidence{N: 1, Attempts: []attempt{acked(1, "r0.ledger.test", "Q1")},
		Copies: []delivered{{Mailbox: "A", ID: 1, QueueID: "Q1"}, {Mailbox: "B", ID: -1, Path: "B/new/x"}}}
	if res := account(ev); len(res.Failures) != 1 || !strings.Contains(res.Failures[0], "B/new/x") {
		t.Errorf("a message without X-Ledger-Id: failures %q, want one naming it", res.Failures)
	}
}
