package certs

import "slices"

// Covers reports whether a certificate valid for name would be served for
// it: one in the SNI directory, a name on the ACME allow-list, or a default
// pair whose names include it. `postern check-config` warns about the
// autoconfig host names for which this is false (a client would see a
// certificate for another name and refuse the document).
func (m *Manager) Covers(name string) bool {
	name = normalizeName(name)
	s := m.snap.Load()
	if s.sni.match(name) != nil {
		return true
	}
	if m.acme != nil && slices.Contains(m.acme.domains, name) {
		return true
	}
	return s.def != nil && s.def.cert.Leaf != nil && s.def.cert.Leaf.VerifyHostname(name) == nil
}
