// Package logging builds the *slog.Logger of hops and hopc from the log
// section of their config: a level (debug, info, warn, error) that a
// reload may change, and a destination (stderr, stdout, console (frp's
// name for stdout) or a file, appended to and, with log.maxDays, rotated
// daily by RotatingFile).
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
	"sync"
	"time"
)

// Options is the [log] table of hops and hopc.
type Options struct {
	// Level is "debug", "info", "warn" or "error".
	Level string
	// To is "stderr" (also ""), "stdout", "console" (standard output, as
	// in frp) or a file path.
	To string
	// MaxDays > 0 rotates the file To daily and keeps the rotated files
	// of that many days (see RotatingFile); 0 appends to one file. Only
	// for a file.
	MaxDays int
	// Now is the clock of the rotation; time.Now when nil.
	Now func() time.Time
}

// Log is an open logger: Logger writes to the destination at the level of
// Level, which SetLevel changes while it runs.
type Log struct {
	*slog.Logger
	Level *slog.LevelVar

	closeOnce sync.Once
	closeErr  error
	close     func() error
}

// New opens the destination of o and returns the logger. Close it when
// done.
func New(o Options) (*Log, error) {
	lv, err := ParseLevel(o.Level)
	if err != nil {
		return nil, err
	}
	w, closer, err := open(o)
	if err != nil {
		return nil, err
	}
	l := &Log{Level: new(slog.LevelVar), close: closer}
	l.Level.Set(lv)
	l.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l.Level}))
	return l, nil
}

// SetLevel changes the level of l from now on; a bad level is an error
// and leaves it as it was.
func (l *Log) SetLevel(level string) error {
	lv, err := ParseLevel(level)
	if err != nil {
		return err
	}
	l.Level.Set(lv)
	return nil
}

// Close closes the file the logger writes to, if any. Later calls return
// the first call's result.
func (l *Log) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.close() })
	return l.closeErr
}

// ParseLevel parses a log.level value: debug, info, warn or error.
func ParseLevel(level string) (slog.Level, error) {
	switch level {
	case "debug", "info", "warn", "error":
	default:
		return 0, fmt.Errorf("log.level %q: use debug, info, warn or error", level)
	}
	var lv slog.Level
	err := lv.UnmarshalText([]byte(level))
	return lv, err
}

// open returns the writer for o.To and the function that closes it.
func open(o Options) (io.Writer, func() error, error) {
	nop := func() error { return nil }
	stream := func(w io.Writer) (io.Writer, func() error, error) {
		if o.MaxDays != 0 {
			return nil, nil, fmt.Errorf("log.maxDays %d: only a log file is rotated, and log.to is %q; set log.maxDays = 0 or log.to to a file", o.MaxDays, o.To)
		}
		return w, nop, nil
	}
	switch o.To {
	case "", "stderr":
		return stream(os.Stderr)
	case "stdout", "console":
		return stream(os.Stdout)
	}
	switch {
	case o.MaxDays < 0:
		return nil, nil, fmt.Errorf("log.maxDays %d: use 0 (no rotation) or the number of days of rotated files to keep", o.MaxDays)
	case o.MaxDays > 0:
		r, err := OpenRotating(o.To, o.MaxDays, o.Now)
		if err != nil {
			return nil, nil, err
		}
		return r, r.Close, nil
	}
	f, err := os.OpenFile(o.To, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("log.to: %w", err)
	}
	return f, f.Close, nil
}
