package logging

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// dayLayout is the date in the names of rotated files: NAME.2026-12-01.
const dayLayout = "2006-01-02"

// RotatingFile is a log file rotated daily (log.maxDays): the first write
// after local midnight renames the file to NAME.YYYY-MM-DD, the day it
// covers, opens a new NAME, and deletes the rotated files of days more
// than MaxDays before today. A rotated name that exists already (the
// clock went back) gets a counter: NAME.YYYY-MM-DD.1, .2 and so on.
//
// It is safe for concurrent use. A failed rotation is reported once on
// standard error and the lines keep going to the open file.
type RotatingFile struct {
	path    string
	maxDays int
	now     func() time.Time
	loc     *time.Location // of days: now's at open (time.Local for time.Now)

	mu     sync.Mutex
	f      *os.File
	day    time.Time // local midnight starting the day f covers
	closed bool
	warned bool // a failed rotation was reported
}

// OpenRotating opens path for appending, rotated daily and keeping the
// rotated files of the last maxDays (>= 1) days. now is the clock, time.Now
// when nil. A file that exists already covers the day it was last written
// (its modification time), so a restart on a later day rotates it at the
// first write.
func OpenRotating(path string, maxDays int, now func() time.Time) (*RotatingFile, error) {
	if maxDays < 1 {
		return nil, fmt.Errorf("log.maxDays %d: rotation keeps 1 or more days (0 turns it off)", maxDays)
	}
	if now == nil {
		now = time.Now
	}
	r := &RotatingFile{path: path, maxDays: maxDays, now: now}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log.to: %w", err)
	}
	r.f = f
	r.loc = now().Location()
	r.day = r.today()
	if fi, err := f.Stat(); err == nil && fi.Size() > 0 {
		r.day = midnight(fi.ModTime().In(r.loc))
	}
	r.prune(r.today())
	return r, nil
}

// Write appends p to the file of today, rotating first when the day
// changed since the last write.
func (r *RotatingFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, os.ErrClosed
	}
	if today := r.today(); !today.Equal(r.day) {
		if err := r.rotate(today); err != nil && !r.warned {
			r.warned = true
			fmt.Fprintf(os.Stderr, "hop: log rotation of %s failed: %v; still writing to it\n", r.path, err)
		}
	}
	return r.f.Write(p)
}

// rotate renames the file to the name of the day it covers and opens a
// new one for today. On failure the old file stays open and in use.
func (r *RotatingFile) rotate(today time.Time) error {
	covered := r.day
	r.day = today // once per day, also when it fails
	if fi, err := r.f.Stat(); err == nil && fi.Size() == 0 {
		r.prune(today) // nothing was written that day: nothing to keep
		return nil
	}
	dst, err := freeName(r.path + "." + covered.Format(dayLayout))
	if err != nil {
		return err
	}
	if err := os.Rename(r.path, dst); err != nil {
		return err
	}
	f, err := os.OpenFile(r.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err // r.f, renamed, takes the lines until the next day
	}
	r.f.Close()
	r.f = f
	r.warned = false
	r.prune(today)
	return nil
}

// freeName is name, or name.N for the first N >= 1 no file has.
func freeName(name string) (string, error) {
	for i := 0; i < 1000; i++ {
		n := name
		if i > 0 {
			n = fmt.Sprintf("%s.%d", name, i)
		}
		if _, err := os.Lstat(n); errors.Is(err, os.ErrNotExist) {
			return n, nil
		}
	}
	return "", fmt.Errorf("%s.1 to .999 exist already", name)
}

// prune deletes the rotated files (NAME.YYYY-MM-DD, NAME.YYYY-MM-DD.N) of
// days before today minus maxDays. Other files are left alone.
func (r *RotatingFile) prune(today time.Time) {
	oldest := today.AddDate(0, 0, -r.maxDays)
	prefix := filepath.Base(r.path) + "."
	dir := filepath.Dir(r.path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		day, ok := rotatedDay(e.Name(), prefix, today.Location())
		if ok && day.Before(oldest) && e.Type().IsRegular() {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// rotatedDay parses the day of a rotated file's name.
func rotatedDay(name, prefix string, loc *time.Location) (time.Time, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok || len(rest) < len(dayLayout) {
		return time.Time{}, false
	}
	date, counter := rest[:len(dayLayout)], rest[len(dayLayout):]
	if counter != "" {
		n, ok := strings.CutPrefix(counter, ".")
		if !ok || n == "" || strings.Trim(n, "0123456789") != "" {
			return time.Time{}, false
		}
	}
	day, err := time.ParseInLocation(dayLayout, date, loc)
	return day, err == nil
}

// Close closes the file. It is safe to call more than once; later calls
// return nil.
func (r *RotatingFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	return r.f.Close()
}

// today is the start of the current day.
func (r *RotatingFile) today() time.Time { return midnight(r.now().In(r.loc)) }

// midnight is the start of t's day in t's location.
func midnight(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, t.Location())
}

var _ io.WriteCloser = (*RotatingFile)(nil)
