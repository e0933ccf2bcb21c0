// Command profile runs Postern's proxy in-process with the settings of
// `postern serve` that the benchmark uses, plus net/http/pprof, so that
// bench/profile.sh can take CPU and heap profiles under W1/W2 load. It is a
// stop-gap until `postern serve` has a --pprof flag; it wires the same
// packages (proxy, auth, certs) as cmd/postern.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/certs"
	"github.com/postern/postern/proxy"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:25587", "STARTTLS listener")
	upstream := flag.String("upstream", "127.0.0.1:24025", "upstream (the sink)")
	users := flag.String("users", "", "passwd-file")
	cert := flag.String("tls-cert", "", "certificate")
	key := flag.String("tls-key", "", "key")
	cacheTTL := flag.Duration("auth-cache-ttl", 5*time.Minute, "credential cache TTL (0: off), as `postern serve`")
	pprofAddr := flag.String("pprof", "127.0.0.1:26060", "net/http/pprof listener")
	flag.Parse()
	if err := run(*listen, *upstream, *users, *cert, *key, *cacheTTL, *pprofAddr); err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		os.Exit(1)
	}
}

func run(listen, upstream, users, cert, key string, cacheTTL time.Duration, pprofAddr string) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cm, err := certs.New(certs.Config{Hostname: "bench.test", CertFile: cert, KeyFile: key}, log)
	if err != nil {
		return err
	}
	pf, err := auth.OpenPasswdFile(users, log)
	if err != nil {
		return err
	}
	srv, err := proxy.New(proxy.Config{
		Hostname:  "bench.test",
		Listeners: []proxy.Listener{{Mode: proxy.ModeStartTLS, Addr: listen}},
		TLSConfig: cm.TLSConfig(),
		Upstream: proxy.UpstreamConfig{
			Addr: upstream, DialTimeout: time.Minute, CommandTimeout: time.Minute, DataTimeout: 10 * time.Minute,
		},
		Auth:            auth.NewCache(auth.Chain(pf), cacheTTL, 0),
		Limiter:         proxy.NewLockout(proxy.LockoutConfig{Log: log}),
		MaxMessageBytes: 104857600,
		MaxRecipients:   100,
		MaxAuthFailures: 3,
		CommandTimeout:  5 * time.Minute,
		DataTimeout:     10 * time.Minute,
		Log:             log,
	})
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	go func() {
		if err := http.ListenAndServe(pprofAddr, nil); err != nil {
			log.Error("pprof", "err", err)
		}
	}()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	fmt.Fprintf(os.Stderr, "profile: postern on %s, pprof on http://%s/debug/pprof/\n", listen, pprofAddr)
	return srv.Serve(ctx, 5*time.Second)
}
