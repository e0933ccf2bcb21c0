package main

import (
	"crypto/tls"
	"fmt"
	"sort"
	"strings"
)

// tlsGroups are the key exchange groups --tls-groups accepts (RFC 8446
// §4.2.7 NamedGroup; the hybrid post-quantum ones from
// draft-ietf-tls-ecdhe-mlkem), by their IANA name; Go's own name
// (CurveID.String, e.g. CurveP256) is accepted as well.
var tlsGroups = []struct {
	iana string
	id   tls.CurveID
}{
	{"x25519", tls.X25519},
	{"secp256r1", tls.CurveP256},
	{"secp384r1", tls.CurveP384},
	{"secp521r1", tls.CurveP521},
	{"x25519mlkem768", tls.X25519MLKEM768},
	{"secp256r1mlkem768", tls.SecP256r1MLKEM768},
	{"secp384r1mlkem1024", tls.SecP384r1MLKEM1024},
}

// parseTLSGroups turns --tls-groups ("x25519", "x25519mlkem768,x25519") into
// tls.Config.CurvePreferences. Empty means Go's default (nil), which since
// Go 1.24 includes X25519MLKEM768. Crypto/tls ignores the order of the list
// and uses its own preference among the groups given, so the list is a set:
// an unknown name or a repeated one is an error, never silently dropped.
func parseTLSGroups(list string) ([]tls.CurveID, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	var out []tls.CurveID
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		id, ok := lookupTLSGroup(name)
		if !ok {
			return nil, fmt.Errorf("--tls-groups: unknown group %q (known: %s)", name, knownTLSGroups())
		}
		for _, seen := range out {
			if seen == id {
				return nil, fmt.Errorf("--tls-groups: %q listed twice", name)
			}
		}
		out = append(out, id)
	}
	return out, nil
}

func lookupTLSGroup(name string) (tls.CurveID, bool) {
	for _, g := range tlsGroups {
		if strings.EqualFold(name, g.iana) || strings.EqualFold(name, g.id.String()) {
			return g.id, true
		}
	}
	return 0, false
}

func knownTLSGroups() string {
	names := make([]string, len(tlsGroups))
	for i, g := range tlsGroups {
		names[i] = g.iana
	}
	return strings.Join(names, ", ")
}

// groupName is how the JSON line and the report name a negotiated group:
// Go's name (X25519, X25519MLKEM768, CurveP256, ...); "none" when the
// handshake used no (EC)DHE group (TLS 1.2 RSA key transport).
func groupName(id tls.CurveID) string {
	if id == 0 {
		return "none"
	}
	return id.String()
}

// groupNames lists groups by groupName, comma-separated, in the given order.
func groupNames(ids []tls.CurveID) string {
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = groupName(id)
	}
	return strings.Join(names, ",")
}

// describeGroups summarizes the groups the connections of one run
// negotiated: the one name when they all agree, else every group with its
// count, most used first (a peer that answers some clients with one group
// and some with another shows it).
func describeGroups(count map[tls.CurveID]int) string {
	ids := make([]tls.CurveID, 0, len(count))
	for id := range count {
		ids = append(ids, id)
	}
	if len(ids) == 1 {
		return groupName(ids[0])
	}
	sort.Slice(ids, func(i, j int) bool {
		if count[ids[i]] != count[ids[j]] {
			return count[ids[i]] > count[ids[j]]
		}
		return ids[i] < ids[j]
	})
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%s ×%d", groupName(id), count[id])
	}
	return strings.Join(parts, ", ")
}
