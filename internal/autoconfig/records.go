package autoconfig

import (
	"fmt"
	"io"
	"strings"
)

// recordTTL is the TTL written on every record: an hour, so a mistake is
// corrected soon after it is fixed.
const recordTTL = 3600

// WriteRecords writes, for every domain, the DNS records that make the
// documents and the submission service findable, in zone-file syntax with
// absolute names (ready to paste into each domain's zone):
//
//   - RFC 6186 / RFC 8314 §5.1 SRV: _submissions._tcp (implicit TLS) and
//     _submission._tcp (STARTTLS), in the order of preference, and _imaps or
//     _imap when an IMAP server is given;
//   - CNAMEs autoconfig.D, autodiscover.D (and mta-sts.D) to the host name,
//     and the _autodiscover._tcp SRV when an HTTPS port is known;
//   - _mta-sts TXT (RFC 8461 §3.1) with PolicyID, and _smtp._tls TXT
//     (RFC 8460 §3) when a TLS-RPT address is given.
func (s *Server) WriteRecords(w io.Writer) error {
	host := fqdn(s.hostname)
	var b strings.Builder
	for _, d := range s.cfg.Domains {
		fmt.Fprintf(&b, "; Postern: records for %s\n", d)
		for i, e := range s.outgoing() {
			svc := "_submission"
			if e.ImplicitTLS {
				svc = "_submissions"
			}
			fmt.Fprintf(&b, "%s._tcp.%s. %d IN SRV %d 1 %d %s\n", svc, d, recordTTL, i*10, e.Port, fqdn(e.Host))
		}
		if e := s.cfg.IMAP; e != nil {
			svc := "_imap"
			if e.ImplicitTLS {
				svc = "_imaps"
			}
			fmt.Fprintf(&b, "%s._tcp.%s. %d IN SRV 0 1 %d %s\n", svc, d, recordTTL, e.Port, fqdn(e.Host))
		}
		for _, p := range []string{PrefixAutoconfig, PrefixAutodiscover} {
			fmt.Fprintf(&b, "%s%s. %d IN CNAME %s\n", p, d, recordTTL, host)
		}
		if s.cfg.HTTPSPort != 0 {
			fmt.Fprintf(&b, "_autodiscover._tcp.%s. %d IN SRV 0 1 %d %s\n", d, recordTTL, s.cfg.HTTPSPort, host)
		}
		if s.policy != "" {
			fmt.Fprintf(&b, "%s%s. %d IN CNAME %s\n", PrefixMTASTS, d, recordTTL, host)
			fmt.Fprintf(&b, "_mta-sts.%s. %d IN TXT \"v=STSv1; id=%s;\"\n", d, recordTTL, PolicyID(s.policy))
		}
		if s.cfg.TLSRPTEmail != "" {
			// parseAddress (in New) admits no quote, backslash or space, so
			// the address fits in a TXT string as it is.
			fmt.Fprintf(&b, "_smtp._tls.%s. %d IN TXT \"v=TLSRPTv1; rua=mailto:%s\"\n", d, recordTTL, s.cfg.TLSRPTEmail)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func fqdn(h string) string { return strings.TrimSuffix(h, ".") + "." }
