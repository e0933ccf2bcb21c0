package autoconfig

import (
	"net/http"
	"net/url"
	"strings"
)

// Paths served. Anything else is 404: no directory listings, no files.
const (
	pathThunderbird          = "/mail/config-v1.1.xml"                        // on autoconfig.D
	pathThunderbirdWellKnown = "/.well-known/autoconfig/mail/config-v1.1.xml" // on D
	pathAutodiscover         = "/autodiscover/autodiscover.xml"               // any case: Outlook varies it
	pathMTASTS               = "/.well-known/mta-sts.txt"                     // RFC 8461 §3.3
	prefixApple              = "/apple/"
	suffixApple              = ".mobileconfig"
)

// MaxAutodiscoverBody bounds the autodiscover POST; Outlook's request is
// a few hundred bytes.
const MaxAutodiscoverBody = 64 << 10

// Handler routes by exact path, so that no cleaning or redirecting of
// "..", "//" or encoded slashes ever reaches a document: such paths match
// nothing and get 404.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		p := r.URL.Path
		switch {
		case hasEncodedSlash(r.URL):
			// r.URL.Path is decoded: /mail%2fconfig-v1.1.xml would
			// match a document. No client encodes the slashes of these
			// paths; a proxy or cache in front may route on the raw
			// path, so the two must not disagree.
			http.NotFound(w, r)
		case p == pathThunderbird || p == pathThunderbirdWellKnown:
			if allow(w, r, http.MethodGet) {
				s.serveThunderbird(w, r)
			}
		case strings.EqualFold(p, pathAutodiscover):
			if allow(w, r, http.MethodPost) {
				s.serveAutodiscover(w, r)
			}
		case p == pathMTASTS:
			if allow(w, r, http.MethodGet) {
				s.serveMTASTS(w, r)
			}
		case strings.HasPrefix(p, prefixApple) && strings.HasSuffix(p, suffixApple) &&
			!strings.Contains(p[len(prefixApple):], "/"):
			if allow(w, r, http.MethodGet) {
				s.serveApple(w, r, strings.TrimSuffix(p[len(prefixApple):], suffixApple))
			}
		default:
			http.NotFound(w, r)
		}
	})
}

// hasEncodedSlash reports whether the request path, as sent, holds a
// percent-encoded slash (%2F, any case).
func hasEncodedSlash(u *url.URL) bool {
	return strings.Contains(strings.ToLower(u.EscapedPath()), "%2f")
}

// allow answers 405 unless r uses method (GET also allows HEAD).
func allow(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method || method == http.MethodGet && r.Method == http.MethodHead {
		return true
	}
	if method == http.MethodGet {
		method = "GET, HEAD"
	}
	w.Header().Set("Allow", method)
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

// hostDomain returns the configured mail domain that the request's Host
// names (D, autoconfig.D, autodiscover.D or mta-sts.D), or "".
func (s *Server) hostDomain(r *http.Request) string {
	h := normalizeHost(r.Host)
	for _, p := range []string{"", PrefixAutoconfig, PrefixAutodiscover, PrefixMTASTS} {
		if d, ok := strings.CutPrefix(h, p); ok && s.domains[d] {
			return d
		}
	}
	return ""
}

// addressDomain checks a client-supplied address and that its domain is
// configured. ok false means the reply was written (400 for a malformed
// address, 404 for a domain not served — the same for every address in it).
func (s *Server) addressDomain(w http.ResponseWriter, r *http.Request, addr string) (local, domain string, ok bool) {
	local, domain, err := parseAddress(addr)
	if err != nil {
		http.Error(w, "bad address", http.StatusBadRequest)
		return "", "", false
	}
	if !s.domains[domain] {
		http.NotFound(w, r)
		return "", "", false
	}
	return local, domain, true
}

// writeBody sends a document with its type and length.
func writeBody(w http.ResponseWriter, r *http.Request, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
