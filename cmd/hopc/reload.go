package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/hopproxy/hop/pkg/client"
	"github.com/hopproxy/hop/pkg/config"
)

// reloadFromFile is hopc's reload, on SIGHUP and from the admin API: read
// the config file at path again (config.LoadClient names the file and line
// of every problem) and hand it to c.Reload, which applies the proxies
// and visitors as a diff. A file with problems is refused, each problem
// logged, and the running config stays; the error says why. Keys that
// changed but apply only at a restart are logged and in the result.
func reloadFromFile(ctx context.Context, c *client.Client, path string, log *slog.Logger) (client.ReloadResult, error) {
	if err := ctx.Err(); err != nil {
		return client.ReloadResult{}, fmt.Errorf("reload refused: %w", client.ErrStopped)
	}
	cfg, err := config.LoadClient(path)
	if err == nil {
		for _, w := range cfg.Warnings() {
			log.Warn("config warning", "warning", w)
		}
		var res client.ReloadResult
		if res, err = c.Reload(cfg); err == nil {
			log.Info("config reloaded", "file", path, "added", res.Added, "removed", res.Removed, "changed", res.Changed, "unchanged", res.Unchanged)
			if len(res.NeedsRestart) > 0 {
				log.Warn("config reloaded, but these keys changed and apply only when hopc restarts", "keys", res.NeedsRestart)
			}
			return res, nil
		}
	}
	var ce *config.Error
	if errors.As(err, &ce) {
		for _, p := range ce.Problems {
			log.Error("reload refused", "problem", p.String())
		}
	} else {
		log.Error("reload refused", "error", err)
	}
	log.Warn("reload refused: the running config stays; fix the file and reload again", "file", path)
	return client.ReloadResult{}, err
}
