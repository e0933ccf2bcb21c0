package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/postern/postern/cmd/postern/internal/control"
	"github.com/postern/postern/limits"
)

// WithSharedLimits runs fn on the sending limits kept in cfg's Redis
// (--state redis://…), for `status` and `unsuspend`, which read them without
// the running instance; with StateMemory only that instance knows them (ask
// it through internal/control). Redis must answer before fn and still be
// in use after it: the store falls back to this process's empty memory
// otherwise, and what fn saw would be nothing.
func WithSharedLimits(ctx context.Context, cfg Config, log *slog.Logger, fn func(context.Context, *limits.Limits) error) error {
	if cfg.State.Spec == StateMemory {
		return errors.New("--state memory: the counters are in the running instance only")
	}
	f, _, err := buildState(cfg.State, log)
	if err != nil {
		return err
	}
	defer f.Close()
	checkCtx, cancel := context.WithTimeout(ctx, control.Timeout)
	err = f.Check(checkCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("--state: redis does not answer: %w", err)
	}
	ls, err := buildLimits(cfg.Limits, cfg.Hostname, f, nil, log)
	if err != nil {
		return err
	}
	ctx, cancel = context.WithTimeout(ctx, control.Timeout)
	defer cancel()
	if err := fn(ctx, ls.limits); err != nil {
		return err
	}
	if f.Degraded() {
		return errors.New("--state: redis failed during the request; nothing shown")
	}
	return nil
}
