package main

import (
	"context"
	"errors"

	"github.com/hopproxy/hop/pkg/client"
	"github.com/hopproxy/hop/pkg/config"
)

// errReloadUnavailable is returned for a valid config until reload exists.
var errReloadUnavailable = errors.New("reload not available in this build: restart hopc to apply the config")

// reloadHook is the admin API's reload (GET/POST /api/reload): it loads
// path again and applies it to c.
//
// MERGE SEAM (issue 10, branch web): the reload branch implements
// (*client.Client).Reload(cfg) (client.ReloadResult, error). At the merge
// replace the last line with:
//
//	return c.Reload(cfg)
//
// and delete errReloadUnavailable. Until then a valid file is refused
// with errReloadUnavailable, an invalid one with its file:line errors.
func reloadHook(ctx context.Context, c *client.Client, path string) (any, error) {
	cfg, err := config.LoadClient(path)
	if err != nil {
		return nil, err
	}
	_, _ = c, cfg
	return nil, errReloadUnavailable
}
