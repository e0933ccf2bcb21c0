package certs

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Certbot's names inside DIR/<host>/ (the live/ layout; both are symlinks
// into ../../archive/<host>/, which os.ReadFile follows).
const (
	liveChain = "fullchain.pem"
	liveKey   = "privkey.pem"
)

// sniIndex maps the names certificates in the SNI directory carry to the
// certificate. It is immutable once built.
type sniIndex struct {
	names   map[string]*entry // "mail.example.com" or "*.example.com"
	entries []*entry          // every loaded pair, sorted by file, for Info and reload
}

// match returns the entry for name: an exact name first, then a wildcard for
// the first label only (RFC 6125 §6.4.3: "*.example.com" covers
// "a.example.com", not "a.b.example.com" nor "example.com").
func (x *sniIndex) match(name string) *entry {
	if x == nil || len(x.names) == 0 {
		return nil
	}
	if e := x.names[name]; e != nil {
		return e
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		return x.names["*"+name[i:]]
	}
	return nil
}

// sniPair is one certificate/key pair found in the directory.
type sniPair struct{ certFile, keyFile string }

// findSNIPairs lists the pairs in dir: DIR/<host>/{fullchain,privkey}.pem
// and DIR/<host>.crt with DIR/<host>.key. Anything else (certbot's README,
// stray files) is ignored.
func findSNIPairs(dir string) ([]sniPair, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("certs: reading SNI directory: %w", err)
	}
	var pairs []sniPair
	for _, de := range ents {
		p := filepath.Join(dir, de.Name())
		st, err := os.Stat(p) // follows symlinks: live/<host> may be one
		if err != nil {
			continue
		}
		switch {
		case st.IsDir():
			chain := filepath.Join(p, liveChain)
			if _, err := os.Stat(chain); err == nil {
				pairs = append(pairs, sniPair{chain, filepath.Join(p, liveKey)})
			}
		case strings.HasSuffix(de.Name(), ".crt"):
			pairs = append(pairs, sniPair{p, strings.TrimSuffix(p, ".crt") + ".key"})
		}
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].certFile < pairs[j].certFile })
	return pairs, nil
}

// loadSNIDir loads every pair in dir. A pair that fails to load keeps its
// entry from prev (nil at start-up, when any failure is returned and the
// caller gives up); the errors are joined.
func loadSNIDir(dir string, prev *sniIndex) (*sniIndex, error) {
	if dir == "" {
		return &sniIndex{}, nil
	}
	pairs, err := findSNIPairs(dir)
	if err != nil {
		if prev != nil {
			return prev, err
		}
		return nil, err
	}
	old := map[string]*entry{}
	if prev != nil {
		for _, e := range prev.entries {
			old[e.certFile] = e
		}
	}
	var errs []error
	idx := &sniIndex{names: map[string]*entry{}}
	for _, p := range pairs {
		c, err := LoadKeyPair(p.certFile, p.keyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("certs: SNI directory: %w", err))
			if e := old[p.certFile]; e != nil {
				idx.entries = append(idx.entries, e)
			}
			continue
		}
		idx.entries = append(idx.entries, &entry{cert: c, source: SourceSNIDir, certFile: p.certFile, keyFile: p.keyFile})
	}
	for _, e := range idx.entries {
		for _, n := range certNames(e.cert) {
			// Two lineages for one name (certbot's example.com and
			// example.com-0001): the one that lasts longer wins, so a
			// forgotten old lineage does not shadow the renewed one.
			if cur := idx.names[n]; cur == nil || e.cert.Leaf.NotAfter.After(cur.cert.Leaf.NotAfter) {
				idx.names[n] = e
			}
		}
	}
	return idx, errors.Join(errs...)
}

// certNames returns the lowercased DNS names of c; the subject CN only when
// there are none, as for old certificates (Go's verifier ignores the CN, but
// the administrator asked for this file to be served).
func certNames(c *tls.Certificate) []string {
	var names []string
	for _, n := range c.Leaf.DNSNames {
		names = append(names, normalizeName(n))
	}
	if len(names) == 0 && c.Leaf.Subject.CommonName != "" && net.ParseIP(c.Leaf.Subject.CommonName) == nil {
		names = append(names, normalizeName(c.Leaf.Subject.CommonName))
	}
	return names
}
