// Package serve builds a running Postern from a Config and runs it: the
// certificates, the authentication backends, the state store, the limits,
// the upstream settings, the autoconfig documents and the proxy.Server,
// wired together (Build); every listener bound before any serves (Listen);
// the parts run under one errgroup until the context ends or one fails
// (Run); SIGHUP's reload (Reload). It also owns the HTTP side of serve: the
// HTTP listeners' connection budgets, the metrics listener (/metrics,
// /healthz, /readyz) and the autoconfig HTTPS servers.
//
// Config is plain data: cmd/postern turns flags, environment and the
// config file into it in one place, and the tests can build one by hand.
// Validation errors name the flag a setting comes from (--upstream, ...),
// as the administrator reads them.
//
// It must never import urfave/cli (the command line is cmd/postern's), and
// no package imports it but cmd/postern.
package serve
