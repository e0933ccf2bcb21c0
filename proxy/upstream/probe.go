package upstream

import (
	"context"
	"fmt"
	"time"
)

// Probe tells whether the upstream at cfg.Addr would take a session: it
// dials it exactly as a session does (Dial: TCP, implicit TLS or STARTTLS
// as cfg.TLS says, verified with cfg.TLSConfig, the greeting, EHLO, AUTH
// when cfg has a Username), then says QUIT. No mail is sent. XCLIENT is
// not: it names a client, and a probe has none.
//
// ctx's deadline caps cfg.DialTimeout (the setup up to EHLO) and
// cfg.Timeout (each later step), and ctx's end aborts the connection once
// it is set up: a probe never outlasts its caller by more than one step.
// check-config and /readyz use it.
func Probe(ctx context.Context, cfg Config) error {
	if deadline, ok := ctx.Deadline(); ok {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("probing upstream %s: %w", cfg.Addr, context.DeadlineExceeded)
		}
		if cfg.DialTimeout <= 0 || cfg.DialTimeout > left {
			cfg.DialTimeout = left
		}
		if cfg.Timeout <= 0 || cfg.Timeout > left {
			cfg.Timeout = left
		}
	}
	up, err := Dial(ctx, cfg, Identity{})
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, up.Abort)
	defer stop()
	if err := up.quit(); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("QUIT to upstream %s: %w", cfg.Addr, err)
	}
	return nil
}
