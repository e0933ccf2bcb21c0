// Package control is the control socket, both ends: `serve` answers
// `postern status` and `postern unsuspend` on a unix socket (Listen, Serve),
// and those commands ask it (Status, Unsuspend) when the counters live in
// the running instance's memory.
//
// A unix socket rather than a path on the --metrics listener: its file mode
// (0600) is the access control, with no token to manage, and it is never
// reachable from the network (the metrics listener usually is, by
// Prometheus). With --state redis the commands could read Redis
// themselves; the socket works with every store.
//
// It must never import urfave/cli, proxy or internal/serve.
package control
