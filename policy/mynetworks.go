package policy

import (
	"fmt"
	"net/netip"
	"strings"
)

// ParseNetworks parses a list of CIDRs or addresses separated by commas or
// whitespace, as Postfix's mynetworks. A bare address is a single-host prefix.
func ParseNetworks(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		f = strings.Trim(f, "[]")
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(strings.ReplaceAll(strings.ReplaceAll(f, "[", ""), "]", ""))
			if err != nil {
				return nil, fmt.Errorf("network %q: %w", f, err)
			}
			out = append(out, unmapPrefix(p).Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("network %q: %w", f, err)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// unmapPrefix turns ::ffff:a.b.c.d/N (N >= 96) into a.b.c.d/(N-96): client
// addresses are compared unmapped, so an IPv4-mapped network would match
// nothing otherwise.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

func InNetworks(nets []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientNetwork is the unit a client is counted in (AUTH failures,
// connections per client): the IPv4 address, or the
// IPv6 /64, since one IPv6 host usually controls a whole /64 and could
// otherwise rotate addresses at will. IPv4-mapped IPv6 counts as IPv4.
func ClientNetwork(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.Prefix(64) // fails only for the invalid Addr, giving Prefix{}
	return p
}
