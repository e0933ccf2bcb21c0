package serve

import (
	"log/slog"
	"syscall"
)

// fileNeed is what the connection caps let Postern hold open at once.
type fileNeed struct {
	smtp    int // --max-connections (0: no limit)
	http    int // --max-http-connections
	metrics int // listen.MetricsMaxConnections
	pool    int // --upstream-pool
}

// total counts two descriptors per SMTP connection: a client in a
// transaction has its own upstream connection.
func (n fileNeed) total() uint64 {
	return uint64(2*n.smtp + n.http + n.metrics + n.pool + FileHeadroom)
}

// checkFileLimit raises the soft RLIMIT_NOFILE to the hard limit and warns
// when the connection caps together may need more descriptors than that:
// past it accept fails with EMFILE on every listener, SMTP included, and
// the caps no longer decide who is served. Go's runtime already raises the
// soft limit at start, to the hard limit less one (syscall's init, since Go
// 1.19: measured 19999 of 20000 with `ulimit -Sn 100`); raising it here
// makes the figure checked the one in force whatever the runtime did.
func checkFileLimit(log *slog.Logger, need fileNeed) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("cannot read the open files limit (RLIMIT_NOFILE)", "err", err)
		return
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = raised.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			log.Warn("cannot raise the open files limit (RLIMIT_NOFILE) to the hard limit", "soft", lim.Cur, "hard", lim.Max, "err", err)
		} else {
			lim = raised
		}
	}
	switch {
	case need.smtp == 0:
		log.Warn("--max-connections 0: nothing bounds the descriptors SMTP clients may take, so a flood can exhaust the open files limit",
			"open_files_limit", lim.Cur)
	case need.total() > lim.Cur:
		log.Warn("the connection caps may need more file descriptors than the open files limit allows; lower --max-connections or raise the limit (systemd LimitNOFILE=, docker --ulimit nofile=, ulimit -n)",
			"open_files_limit", lim.Cur, "need", need.total(),
			"max_connections", need.smtp, "descriptors_per_smtp_connection", 2,
			"max_http_connections", need.http, "metrics_connections", need.metrics,
			"upstream_pool", need.pool, "headroom", FileHeadroom)
	}
}
