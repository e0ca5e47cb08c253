package logging

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// zone is not UTC, so that a test shows rotation at local midnight.
var zone = time.FixedZone("UTC+1", 3600)

func at(day, hour, min int) time.Time { return time.Date(2026, 12, day, hour, min, 0, 0, zone) }

func write(t *testing.T, r *RotatingFile, line string) {
	t.Helper()
	if _, err := r.Write([]byte(line + "\n")); err != nil {
		t.Fatal(err)
	}
}

// files returns the names in dir and their contents.
func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = string(b)
	}
	return m
}

func names(m map[string]string) []string {
	var n []string
	for k := range m {
		n = append(n, k)
	}
	slices.Sort(n)
	return n
}

func TestRotatesAtLocalMidnight(t *testing.T) {
	dir := t.TempDir()
	clk := &fakeClock{t: at(1, 10, 0)}
	r, err := OpenRotating(filepath.Join(dir, "hops.log"), 7, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	write(t, r, "a")
	clk.set(at(1, 23, 59))
	write(t, r, "b")
	clk.set(time.Date(2026, 12, 1, 23, 30, 0, 0, time.UTC)) // 00:30 on the 2nd in zone
	if got := names(files(t, dir)); !slices.Equal(got, []string{"hops.log"}) {
		t.Fatalf("rotated before a write: %v", got)
	}
	write(t, r, "c")
	clk.set(at(2, 12, 0).In(zone))
	write(t, r, "d")
	got := files(t, dir)
	want := map[string]string{"hops.log": "c\nd\n", "hops.log.2026-12-01": "a\nb\n"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("files = %q, want %q", got, want)
	}
}

func TestDeletesFilesOlderThanMaxDays(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hopc.log")
	for _, n := range []string{"hopc.log.notes", "hopc.log.2020-01-01.bak", "other.log.2020-01-01", "hopc.log.2020-13-01"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("keep\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path+".2020-01-01.3", []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: at(1, 8, 0)}
	r, err := OpenRotating(path, 2, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, ok := files(t, dir)["hopc.log.2020-01-01.3"]; ok {
		t.Error("open kept a rotated file of 2020")
	}
	for day := 1; day <= 5; day++ {
		clk.set(at(day, 8, 0))
		write(t, r, fmt.Sprint("day ", day))
	}
	got := files(t, dir)
	want := map[string]string{
		"hopc.log":                "day 5\n",
		"hopc.log.2026-12-03":     "day 3\n",
		"hopc.log.2026-12-04":     "day 4\n",
		"hopc.log.notes":          "keep\n",
		"hopc.log.2020-01-01.bak": "keep\n",
		"other.log.2020-01-01":    "keep\n",
		"hopc.log.2020-13-01":     "keep\n",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("files:\n%q\nwant\n%q", got, want)
	}
}

// TestExistingFileOfAnEarlierDay: hop restarted on a later day appends to
// the file until its first write, which rotates the old lines under the
// day they were written.
func TestExistingFileOfAnEarlierDay(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hops.log")
	if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, at(3, 22, 0), at(3, 22, 0)); err != nil {
		t.Fatal(err)
	}
	// the clock went back once: the name of the 3rd is taken
	if err := os.WriteFile(path+".2026-12-03", []byte("taken\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: at(5, 9, 0)}
	r, err := OpenRotating(path, 7, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	write(t, r, "new")
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	got := files(t, dir)
	want := map[string]string{"hops.log": "new\n", "hops.log.2026-12-03": "taken\n", "hops.log.2026-12-03.1": "old\n"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("files = %q, want %q", got, want)
	}
}

// TestEmptyDayLeavesNoFile: a file nothing was written to is not
// rotated.
func TestEmptyDayLeavesNoFile(t *testing.T) {
	dir := t.TempDir()
	clk := &fakeClock{t: at(1, 8, 0)}
	r, err := OpenRotating(filepath.Join(dir, "hops.log"), 3, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	clk.set(at(2, 8, 0))
	write(t, r, "x")
	if got := files(t, dir); fmt.Sprint(got) != fmt.Sprint(map[string]string{"hops.log": "x\n"}) {
		t.Fatalf("files = %q", got)
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	r, err := OpenRotating(filepath.Join(t.TempDir(), "hops.log"), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	write(t, r, "x")
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := r.Write([]byte("late\n")); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if _, err := OpenRotating(filepath.Join(t.TempDir(), "hops.log"), 0, nil); err == nil {
		t.Fatal("maxDays 0 accepted")
	}
}

// TestConcurrentWritesAcrossMidnight: writers racing a day change lose no
// line and split them by day (run with -race).
func TestConcurrentWritesAcrossMidnight(t *testing.T) {
	dir := t.TempDir()
	clk := &fakeClock{t: at(1, 23, 0)}
	r, err := OpenRotating(filepath.Join(dir, "hops.log"), 2, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const writers, lines = 4, 200
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < lines; i++ {
				if w == 0 && i == lines/2 {
					clk.set(at(2, 0, 0))
				}
				if _, err := r.Write([]byte(fmt.Sprintf("w%d %d\n", w, i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got := files(t, dir)
	if len(got) != 2 {
		t.Fatalf("files: %v", names(got))
	}
	total := strings.Count(got["hops.log"], "\n") + strings.Count(got["hops.log.2026-12-01"], "\n")
	if total != writers*lines || !strings.Contains(got["hops.log"], fmt.Sprintf("w0 %d\n", lines-1)) || !strings.Contains(got["hops.log.2026-12-01"], "w0 0\n") {
		t.Fatalf("%d lines of %d; today %d bytes", total, writers*lines, len(got["hops.log"]))
	}
}

// TestNewRotates: New with MaxDays writes through a RotatingFile.
func TestNewRotates(t *testing.T) {
	dir := t.TempDir()
	clk := &fakeClock{t: at(1, 12, 0)}
	log, err := New(Options{Level: "info", To: filepath.Join(dir, "hops.log"), MaxDays: 1, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	log.Info("first")
	clk.set(at(2, 12, 0))
	log.Info("second")
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	got := files(t, dir)
	if !strings.Contains(got["hops.log.2026-12-01"], "msg=first") || !strings.Contains(got["hops.log"], "msg=second") || strings.Contains(got["hops.log"], "first") {
		t.Fatalf("files = %q", got)
	}
}
