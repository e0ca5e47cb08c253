// Package logging builds the *slog.Logger of hops and hopc from the log
// section of their config: a level (debug, info, warn, error) and a
// destination (stderr, stdout or a file, appended to).
//
// Its Limiter keeps the lines a remote peer can repeat at will (failed
// handshakes, rejected logins, refused visitors) to one line and one
// summary per source and window.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
)

// New returns the logger and a function that closes its file, if any.
func New(level, to string) (*slog.Logger, func() error, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, fmt.Errorf("log.level %q: use debug, info, warn or error", level)
	}
	var w io.Writer
	closer := func() error { return nil }
	switch to {
	case "", "stderr":
		w = os.Stderr
	case "stdout":
		w = os.Stdout
	default:
		f, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("log.to: %w", err)
		}
		w, closer = f, f.Close
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lv})), closer, nil
}
