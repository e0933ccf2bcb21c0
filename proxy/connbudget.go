package proxy

import "net/netip"

// The reasons ConnBudget.Admit refuses a connection: the same label values
// as the SMTP listeners' refusals in postern_connections_refused_total.
const (
	RefusedGlobal = refusedGlobal // over the total cap
	RefusedPerIP  = refusedPerIP  // over the per-network cap
)

// ConnBudget caps the open connections of listeners that are not SMTP's
// (cmd/postern's HTTP listeners), in total and per client network, counted
// as the SMTP listeners count theirs (an IPv4 address, an IPv6 /64) but in
// a budget of its own: a flood of one kind of listener cannot spend the
// descriptors the other needs. Safe for concurrent use.
type ConnBudget struct {
	limits *connLimits
}

// NewConnBudget returns a budget of maxTotal connections, maxPerNet of them
// from one client network; 0 is no limit.
func NewConnBudget(maxTotal, maxPerNet int) *ConnBudget {
	return &ConnBudget{limits: newConnLimits(maxTotal, maxPerNet)}
}

// Admit counts a connection from client and returns the function that
// uncounts it (at its close; later calls do nothing), or, over a cap, nil
// and RefusedGlobal or RefusedPerIP, counting nothing.
func (b *ConnBudget) Admit(client netip.Addr) (release func(), reason string) {
	t := &connTicket{}
	b.limits.open()
	if reason := b.limits.admit(t, client, false); reason != "" {
		b.limits.close(t)
		return nil, reason
	}
	return func() { b.limits.close(t) }, ""
}

// Open returns the connections counted now.
func (b *ConnBudget) Open() int {
	total, _ := b.limits.counts()
	return total
}
