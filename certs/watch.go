package certs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// watch polls the certificate files and reloads when they change. Polling
// modification times needs no dependency (fsnotify), works on every
// filesystem including network mounts and Kubernetes secret volumes (which
// swap a symlink), and certificates change rarely enough that a few seconds
// of delay do not matter.
func (m *Manager) watch(ctx context.Context) {
	t := time.NewTicker(m.cfg.PollInterval)
	defer t.Stop()
	last := m.fingerprint()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fp := m.fingerprint()
		if fp == last {
			continue
		}
		// Remembering this fingerprint even if the reload fails means a
		// half-written pair (certbot writes the chain, then the key) is
		// retried at the next change, not logged every few seconds.
		last = fp
		m.log.Info("certs: certificate files changed, reloading")
		_ = m.Reload() // Reload logs what it kept and why
	}
}

// fingerprint summarises what the files look like now: for every file that
// is or might be loaded, its symlink target (certbot renews by re-pointing
// live/ links into archive/), modification time and size.
func (m *Manager) fingerprint() string {
	var b strings.Builder
	if m.cfg.CertFile != "" {
		statInto(&b, m.cfg.CertFile)
		statInto(&b, m.cfg.KeyFile)
	}
	if m.cfg.SNIDir != "" {
		statInto(&b, m.cfg.SNIDir)
		pairs, err := findSNIPairs(m.cfg.SNIDir)
		if err != nil {
			fmt.Fprintf(&b, "err %v\n", err)
		}
		for _, p := range pairs {
			statInto(&b, filepath.Dir(p.certFile))
			statInto(&b, p.certFile)
			statInto(&b, p.keyFile)
		}
	}
	return b.String()
}

func statInto(b *strings.Builder, path string) {
	b.WriteString(path)
	if target, err := os.Readlink(path); err == nil {
		fmt.Fprintf(b, " -> %s", target)
	}
	if st, err := os.Stat(path); err == nil {
		fmt.Fprintf(b, " %d %d\n", st.ModTime().UnixNano(), st.Size())
	} else {
		b.WriteString(" missing\n")
	}
}
