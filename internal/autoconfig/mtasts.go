package autoconfig

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// buildPolicy writes the MTA-STS policy text (RFC 8461 §3.2): key: value
// lines ending in CRLF. mode "" means no policy (and returns "").
func buildPolicy(mode string, mx []string, maxAge time.Duration) (string, error) {
	switch mode {
	case "":
		if len(mx) > 0 {
			return "", fmt.Errorf("autoconfig: --mta-sts-mx without --mta-sts-mode")
		}
		return "", nil
	case ModeTesting, ModeEnforce, ModeNone:
	default:
		return "", fmt.Errorf("autoconfig: MTA-STS mode %q: want testing, enforce or none", mode)
	}
	if maxAge == 0 {
		maxAge = DefaultMTASTSMaxAge
	}
	if maxAge < time.Second || maxAge > maxMTASTSMaxAge {
		return "", fmt.Errorf("autoconfig: MTA-STS max_age %s: want 1s to %s (RFC 8461 §3.2)", maxAge, maxMTASTSMaxAge)
	}
	// A policy that is not "none" must name the MX hosts it covers: a
	// sender in enforce mode refuses every MX not listed.
	if mode != ModeNone && len(mx) == 0 {
		return "", fmt.Errorf("autoconfig: MTA-STS mode %s needs at least one --mta-sts-mx", mode)
	}
	var b strings.Builder
	b.WriteString("version: STSv1\r\n")
	fmt.Fprintf(&b, "mode: %s\r\n", mode)
	for _, m := range mx {
		m = normalizeHost(m)
		// mx patterns: a host name, or "*." and a host name (§3.2, §4.1).
		if !isHostName(strings.TrimPrefix(m, "*.")) {
			return "", fmt.Errorf("autoconfig: MTA-STS mx %q is not a host name or *.domain pattern", m)
		}
		fmt.Fprintf(&b, "mx: %s\r\n", m)
	}
	fmt.Fprintf(&b, "max_age: %d\r\n", int64(maxAge/time.Second))
	return b.String(), nil
}

// PolicyID is the id of the _mta-sts TXT record (RFC 8461 §3.1: 1 to 32
// alphanumeric characters that change when the policy does): the first 32
// hex digits of the policy text's SHA-256.
func PolicyID(policy string) string {
	sum := sha256.Sum256([]byte(policy))
	return hex.EncodeToString(sum[:])[:32]
}

// serveMTASTS answers GET /.well-known/mta-sts.txt, only on mta-sts.D and
// only over HTTPS (RFC 8461 §3.3: senders fetch it over HTTPS and check the
// certificate for that name; over HTTP it would mean nothing).
func (s *Server) serveMTASTS(w http.ResponseWriter, r *http.Request) {
	d, ok := strings.CutPrefix(normalizeHost(r.Host), PrefixMTASTS)
	if s.policy == "" || r.TLS == nil || !ok || !s.domains[d] {
		http.NotFound(w, r)
		return
	}
	writeBody(w, r, "text/plain", []byte(s.policy))
}
