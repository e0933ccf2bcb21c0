package listen

import "net/netip"

// ConnBudget caps the open connections of listeners that are not SMTP's
// (cmd/postern's HTTP listeners), in total and per client network, counted
// as the SMTP listeners count theirs (an IPv4 address, an IPv6 /64) but in
// a budget of its own: a flood of one kind of listener cannot spend the
// descriptors the other needs. Safe for concurrent use.
type ConnBudget struct {
	limits *ConnLimits
}

// NewConnBudget returns a budget of maxTotal connections, maxPerNet of them
// from one client network; 0 is no limit.
func NewConnBudget(maxTotal, maxPerNet int) *ConnBudget {
	return &ConnBudget{limits: NewConnLimits(maxTotal, maxPerNet)}
}

// Admit counts a connection from client and returns the function that
// uncounts it (at its close; later calls do nothing), or, over a cap, nil
// and RefusedGlobal or RefusedPerIP, counting nothing.
func (b *ConnBudget) Admit(client netip.Addr) (release func(), reason string) {
	t := &Ticket{}
	b.limits.Open()
	if reason := b.limits.Admit(t, client, false); reason != "" {
		b.limits.Close(t)
		return nil, reason
	}
	return func() { b.limits.Close(t) }, ""
}

// admitTotal is Admit for a load balancer's connection: counted in the
// total only, since it carries many clients behind one address, and the
// client's own is known only once its PROXY header is read, in the
// connection's goroutine. (Once it chose SMTP, the SMTP caps count it by
// the client's address, as on the other listeners.)
func (b *ConnBudget) admitTotal() (release func(), reason string) {
	t := &Ticket{}
	b.limits.Open()
	if reason := b.limits.Admit(t, netip.Addr{}, true); reason != "" {
		b.limits.Close(t)
		return nil, reason
	}
	return func() { b.limits.Close(t) }, ""
}

// Open returns the connections counted now.
func (b *ConnBudget) Open() int {
	total, _ := b.limits.Counts()
	return total
}
