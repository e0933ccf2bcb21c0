package listen

import (
	"fmt"
	"strconv"
	"strings"
)

// SplitPublicPort splits a listen address that names the port clients use,
// "ADDR@PORT" (--listen tls=:10465@465), into the address to bind and that
// public port; without "@" the public port is 0 (the bound one). Behind
// NAT, a Docker port mapping or a load balancer, Postern listens on other
// ports than the ones clients reach, and everything that advertises a port
// (the autoconfig documents, dns-records) must name the public one.
func SplitPublicPort(s string) (addr string, public int, err error) {
	addr, p, ok := strings.Cut(s, "@")
	if !ok {
		return s, 0, nil
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return "", 0, fmt.Errorf("advertised port %q after @: want 1 to 65535", p)
	}
	return addr, n, nil
}
