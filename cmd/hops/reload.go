package main

import (
	"errors"
	"log/slog"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/server"
)

// reload is what SIGHUP does: read the config file again and hand it to
// srv.Reload, which applies what can change while hops runs and logs the
// rest as needing a restart. A file with problems is refused, each
// problem logged with its file and line, and the running config stays.
func reload(path string, srv *server.Server, log *slog.Logger) {
	log.Info("SIGHUP: reloading the config file", "file", path)
	cfg, err := config.LoadServer(path)
	if err == nil {
		for _, w := range cfg.Warnings() {
			log.Warn("config warning", "warning", w)
		}
		_, _, err = srv.Reload(cfg)
	}
	if err == nil {
		return
	}
	var ce *config.Error
	if errors.As(err, &ce) {
		for _, p := range ce.Problems {
			log.Error("config reload refused", "problem", p.String())
		}
	} else {
		log.Error("config reload refused", "error", err)
	}
	log.Warn("config reload refused: the running config stays; fix the file and send SIGHUP again", "file", path)
}
