package ledger

import (
	"bufio"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The accounting: every message the client was told 250 for must be in
// exactly one mailbox; every other copy of a message must be explained by
// the logs, or the ledger fails.

// delivered is one copy of a message found in a mailbox.
type delivered struct {
	Mailbox   string // A or B: the Postfix that delivered it
	Path      string
	ID        int       // its X-Ledger-Id, -1 if it has none
	QueueID   string    // the Postfix queue id in Postfix's Received header
	Replica   string    // the replica in Postern's Received header
	PosternID string    // Postern's message id in that header
	Written   time.Time // the Maildir file's modification time
}

var (
	ledgerIDHeader  = regexp.MustCompile(`(?mi)^X-Ledger-Id: (\d+)\r?$`)
	posternReceived = regexp.MustCompile(`by (\S+) \(Postern\)\s+with \S+\s+id ([^;\s]+)`)
	postfixReceived = regexp.MustCompile(`\(Postfix\)\s+with \S+\s+id ([0-9A-Za-z]+)`)
)

// parseCopy reads the ledger's marks out of a delivered message: data is
// the message as sent to Postfix (Postern's Received header on top), and
// received Postfix's own Received header.
func parseCopy(mailbox, path string, data []byte, received string) delivered {
	d := delivered{Mailbox: mailbox, Path: path, ID: -1}
	if m := ledgerIDHeader.FindSubmatch(data); m != nil {
		d.ID, _ = strconv.Atoi(string(m[1]))
	}
	if m := posternReceived.FindSubmatch(data); m != nil {
		d.Replica, d.PosternID = string(m[1]), string(m[2])
	}
	if m := postfixReceived.FindStringSubmatch(received); m != nil {
		d.QueueID = m[1]
	}
	return d
}

// evidence is what the ledger is given to account for the messages.
type evidence struct {
	N        int
	Attempts []attempt
	Copies   []delivered
	Faults   []fault
	// PosternLogs maps a replica's hostname to its log (every
	// incarnation); Maillogs a mailbox to its Postfix's maillog.
	PosternLogs map[string]string
	Maillogs    map[string]string
}

// result is the ledger.
type result struct {
	Sent, Delivered, Lost  int
	Duplicates, Explained  int
	Unacknowledged         int // messages delivered that the client never saw 250 for
	Faults                 int
	Explanations, Failures []string
}

// Line is the ledger's final line.
func (r result) Line() string {
	return fmt.Sprintf("ledger: %d sent, %d delivered, %d lost, %d duplicates (%d explained), %d faults",
		r.Sent, r.Delivered, r.Lost, r.Duplicates, r.Explained, r.Faults)
}

// account draws up the ledger.
func account(ev evidence) result {
	res := result{Sent: ev.N, Faults: len(ev.Faults)}
	attempts := map[int][]attempt{}
	for _, a := range ev.Attempts {
		attempts[a.ID] = append(attempts[a.ID], a)
	}
	copies := map[int][]delivered{}
	for _, d := range ev.Copies {
		if d.ID < 1 || d.ID > ev.N {
			res.Failures = append(res.Failures, fmt.Sprintf("a message that is not the ledger's in mailbox %s: %s (X-Ledger-Id %d)", d.Mailbox, d.Path, d.ID))
			continue
		}
		copies[d.ID] = append(copies[d.ID], d)
	}
	for id := 1; id <= ev.N; id++ {
		ev.accountMessage(&res, id, attempts[id], copies[id])
	}
	sort.Strings(res.Failures)
	return res
}

// accountMessage enters message id into res: tries are the client's
// attempts at it, cs its copies in the mailboxes.
func (ev evidence) accountMessage(res *result, id int, tries []attempt, cs []delivered) {
	if len(cs) > 0 {
		res.Delivered++
		res.Duplicates += len(cs) - 1
	}
	acked := map[string]bool{}
	for _, a := range tries {
		if a.acked() {
			acked[a.queueID()] = true
		}
	}
	if len(acked) == 0 {
		res.Failures = append(res.Failures, fmt.Sprintf("%06d never sent (no 250); its replies:\n%s", id, replies(tries)))
	}
	found := map[string]bool{}
	seen := map[string]int{}        // mailbox+queue id: copies so far
	first := map[string]delivered{} // mailbox+queue id: the earliest copy
	unexplained := 0
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].Written.Before(cs[j].Written) })
	for _, d := range cs {
		key := d.Mailbox + "/" + d.QueueID
		seen[key]++
		if seen[key] == 1 {
			first[key] = d
		}
		switch {
		case seen[key] > 1:
			// Postfix delivered its own queue file twice.
			if why, ok := ev.redelivered(first[key], d); ok {
				res.Explanations = append(res.Explanations, fmt.Sprintf("%06d copy %d of %s in %s: %s", id, seen[key], d.QueueID, d.Mailbox, why))
			} else {
				unexplained++
				res.Failures = append(res.Failures, fmt.Sprintf("%06d delivered twice by %s as %s, unexplained: %s\nits replies:\n%s", id, d.Mailbox, d.QueueID, why, replies(tries)))
			}
		case acked[d.QueueID] && d.QueueID != "":
			found[d.QueueID] = true
		default:
			if why, ok := ev.unacknowledged(d, tries); ok {
				res.Explanations = append(res.Explanations, fmt.Sprintf("%06d copy %s in %s (via %s, Postern id %s), never acknowledged: %s", id, d.QueueID, d.Mailbox, d.Replica, d.PosternID, why))
			} else {
				unexplained++
				res.Failures = append(res.Failures, fmt.Sprintf("%06d copy %s in %s (via %s, Postern id %s) that the client was never told 250 for, unexplained: %s\nits replies:\n%s",
					id, d.QueueID, d.Mailbox, d.Replica, d.PosternID, why, replies(tries)))
			}
		}
	}
	for q := range acked {
		if !found[q] {
			res.Lost++
			res.Failures = append(res.Failures, fmt.Sprintf("%06d LOST: the client was told 250 (queued as %q) and no mailbox holds that copy; copies: %v\nits replies:\n%s", id, q, cs, replies(tries)))
		}
	}
	if len(acked) == 0 && len(cs) > 0 {
		res.Unacknowledged++
	}
	res.Explained += max(0, len(cs)-1-unexplained)
}

// replies lists a message's attempts, one a line.
func replies(tries []attempt) string {
	if len(tries) == 0 {
		return "  (no attempt)"
	}
	var b strings.Builder
	for _, a := range tries {
		b.WriteString("  " + a.String() + "\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// unacknowledged explains copy d of a message the client was not told 250
// for (in this copy's transaction). The replica's log line for d's Postern
// id says how, and a fault at the time of the client's attempt says why:
//   - "message accepted": the replica relayed the upstream's 250 and the
//     client's connection broke before it read it, by a kill or drain of
//     that replica;
//   - "message rejected" with 4xx: the upstream queued the message and its
//     connection broke before its 250, by a stop of that Postfix; the
//     client got the 4xx (or nothing) and sent again;
//   - no line: the replica was killed between the upstream's 250 and its
//     log line, and the client's connection broke then.
func (ev evidence) unacknowledged(d delivered, tries []attempt) (string, bool) {
	line := ev.posternLine(d)
	broken := func(a attempt) bool { return a.Reply == "" }
	deferredOrBroken := func(a attempt) bool { return a.Reply == "" || strings.HasPrefix(a.Reply, "4") }
	switch {
	case strings.Contains(line, `msg="message accepted"`) && strings.Contains(line, d.QueueID):
		for _, kind := range []string{"kill", "drain"} {
			if a, f, ok := ev.attemptDuring(d, tries, broken, kind, d.Replica); ok {
				return fmt.Sprintf("reply lost: the upstream's 250 was relayed and the client's connection broke before it read it (%s)\n  postern: %s\n  client: %s%s",
					f, line, a, ev.maillogLines(d)), true
			}
		}
		return "the 250 was relayed and no kill or drain of " + d.Replica + " broke a connection of the client's after its dot\n  postern: " + line, false
	case strings.Contains(line, `msg="message rejected"`) && strings.Contains(line, `reply="4`):
		if a, f, ok := ev.attemptDuring(d, tries, deferredOrBroken, "postfix", d.Mailbox); ok {
			return fmt.Sprintf("upstream's reply lost: the upstream queued the message and its connection broke before its 250 (%s); the client was told 4xx (or nothing) and sent again\n  postern: %s\n  client: %s%s",
				f, line, a, ev.maillogLines(d)), true
		}
		return "the upstream's connection broke after the dot, and no stop of Postfix " + d.Mailbox + " was under way\n  postern: " + line, false
	case line != "":
		return "postern logged " + line, false
	}
	if a, f, ok := ev.attemptDuring(d, tries, broken, "kill", d.Replica); ok {
		return fmt.Sprintf("replica killed after the upstream's 250, before it logged or replied: %s\n  client: %s%s",
			f, a, ev.maillogLines(d)), true
	}
	return "no line of " + d.Replica + " names id=" + d.PosternID + " and no kill of it broke a connection of the client's after its dot", false
}

// posternLine is the replica's log line of d's message ("message accepted"
// or "message rejected"), "" if it logged none.
func (ev evidence) posternLine(d delivered) string {
	for _, l := range readLines(ev.PosternLogs[d.Replica]) {
		if strings.Contains(l, " id="+d.PosternID+" ") && strings.Contains(l, `msg="message `) {
			return l
		}
	}
	return ""
}

// attemptDuring finds an attempt of the client via d's replica that ended
// after its final dot, as match says, while a fault of kind on target was
// under way (or had just ended: killSlack).
func (ev evidence) attemptDuring(d delivered, tries []attempt, match func(attempt) bool, kind, target string) (attempt, fault, bool) {
	for _, f := range ev.Faults {
		if f.Kind != kind || f.Target != target {
			continue
		}
		for _, a := range tries {
			if a.Stage == "dot" && a.Via == d.Replica && match(a) && !a.At.Before(f.Start) && a.At.Before(f.End.Add(killSlack)) {
				return a, f, true
			}
		}
	}
	return attempt{}, fault{}, false
}

// killSlack is how long after a fault's end (the part started again) a
// client may take to see its connection broken by it.
const killSlack = 5 * time.Second

// maillogLines are the lines of d's Postfix naming its queue id, each on a
// line of its own after a newline.
func (ev evidence) maillogLines(d delivered) string {
	var b strings.Builder
	for _, l := range readLines(ev.Maillogs[d.Mailbox]) {
		if d.QueueID != "" && strings.Contains(l, d.QueueID+":") {
			b.WriteString("\n  maillog " + d.Mailbox + ": " + l)
		}
	}
	return b.String()
}

// redelivered explains a second copy d of one Postfix queue file, the
// first being earlier: that Postfix was stopped after writing the first
// copy (its delivery agent killed before it could report it) and wrote d
// after its restart, so the maillog shows the queue file delivered again.
func (ev evidence) redelivered(earlier, d delivered) (string, bool) {
	for _, f := range ev.Faults {
		// The restart's queue run may deliver before Start saw the
		// banner, i.e. before f.End: the second copy is only after the
		// stop began.
		if f.Kind == "postfix" && f.Target == d.Mailbox && earlier.Written.Before(f.End) && !d.Written.Before(f.Start) &&
			earlier.Written.After(f.Start.Add(-time.Minute)) {
			return fmt.Sprintf("Postfix %s wrote it at %s, was stopped before it could record the delivery, and delivered its queue file again after the restart, at %s (%s)%s",
				d.Mailbox, earlier.Written.UTC().Format("15:04:05.000"), d.Written.UTC().Format("15:04:05.000"), f, ev.maillogLines(d)), true
		}
	}
	return fmt.Sprintf("no stop of Postfix %s between its copies (%s, %s)%s", d.Mailbox,
		earlier.Written.UTC().Format("15:04:05.000"), d.Written.UTC().Format("15:04:05.000"), ev.maillogLines(d)), false
}

// readLines is the lines of s (a log).
func readLines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
