package serve

import (
	"context"
	"net/http"

	"golang.org/x/sync/errgroup"

	"github.com/postern/postern/cmd/postern/internal/control"
)

// Run serves on lns (from Listen) until ctx ends or a part fails, and
// returns that part's error. The state store, when shared, is checked once
// at start and closed at the end.
func (inst *Instance) Run(ctx context.Context, lns *Listeners) error {
	if inst.state != nil {
		defer inst.state.Close()
		checkState(ctx, inst.state)
		// The watch stops before the store it reads is closed.
		defer runUntilReturn(ctx, inst.evictions.Run)()
	}
	go inst.limits.alerts.Run(ctx)
	return inst.runParts(ctx, lns)
}

// runParts serves every bound listener and runs the certificate manager
// until ctx ends or one of them fails. Every part here fails only when its
// listener or its loop breaks, which a restart (re-binding, re-reading) is
// what mends; so a failing part ends them all and serve returns its error
// (exit 1) for the supervisor to restart the process, rather than serving
// on without it: SMTP without certificate renewal and the file poller (the
// certificate manager), or with a /readyz nobody can ask (metrics). What a
// restart would not mend (the upstream or the state store being down)
// turns /readyz to 503 instead (readiness, state's fallback) and is no part.
func (inst *Instance) runParts(ctx context.Context, lns *Listeners) error {
	log := inst.log
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return inst.certs.Run(ctx, lns.http01) })
	if lns.control != nil {
		g.Go(func() error { return control.Serve(ctx, lns.control, inst.limits.limits, log) })
	}
	if lns.https != nil {
		g.Go(func() error {
			return serveHTTPS(ctx, lns.https, inst.certs.TLSConfig(), inst.autoconfig.Handler(), log)
		})
	}
	if ln := inst.server.HTTPSListener(); ln != nil {
		var h http.Handler
		if inst.autoconfig != nil {
			h = inst.autoconfig.Handler()
		}
		g.Go(func() error { return serveSharedHTTP(ctx, ln, h, log) })
	}
	if lns.metrics != nil {
		g.Go(func() error { return serveMetrics(ctx, lns.metrics, inst.registry, inst.ready, inst.pprof, log) })
	}
	g.Go(func() error { return inst.server.Serve(ctx, inst.drain) })
	if err := g.Wait(); err != nil {
		log.Error("stopped", "err", err)
		return err
	}
	return nil
}
