package proxy

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
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("network %q: %w", f, err)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func inNetworks(nets []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
