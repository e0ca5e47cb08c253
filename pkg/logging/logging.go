// Package logging builds the *slog.Logger of hops and hopc from the log
// section of their config: a level (debug, info, warn, error) and a
// destination (stderr, stdout, console (frp's name for stdout) or a file,
// appended to).
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
)

// New returns the logger and a function that closes its file, if any.
// to is "stderr" (also ""), "stdout", "console" (standard output, as in
// frp) or a file path.
func New(level, to string) (*slog.Logger, func() error, error) {
	lv, err := parseLevel(level)
	if err != nil {
		return nil, nil, err
	}
	w, closer, err := open(to)
	if err != nil {
		return nil, nil, err
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lv})), closer, nil
}

func parseLevel(level string) (slog.Level, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return 0, fmt.Errorf("log.level %q: use debug, info, warn or error", level)
	}
	return lv, nil
}

// open returns the writer for to and the function that closes it.
func open(to string) (io.Writer, func() error, error) {
	nop := func() error { return nil }
	switch to {
	case "", "stderr":
		return os.Stderr, nop, nil
	case "stdout", "console":
		return os.Stdout, nop, nil
	}
	f, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("log.to: %w", err)
	}
	return f, f.Close, nil
}
