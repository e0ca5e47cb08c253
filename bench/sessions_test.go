package main

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSessionFlags(t *testing.T) {
	o, err := parseFlags(nil, os.Stderr)
	if err != nil || !slices.Equal(o.sessions, []int{100, 1000}) {
		t.Fatalf("default -sessions: %v %v", o.sessions, err)
	}
	if o, _ := parseFlags([]string{"-quick"}, os.Stderr); !slices.Equal(o.sessions, []int{10, 50}) {
		t.Errorf("-quick sessions %v", o.sessions)
	}
	if o, _ := parseFlags([]string{"-sessions", "0"}, os.Stderr); o.sessions != nil {
		t.Errorf("-sessions 0: %v", o.sessions)
	}
	for _, args := range [][]string{{"-sessions", "100,50"}, {"-sessions", "x"}, {"-sessions", "-3"}, {"-sessions", "0", "-only-sessions"},
		{"-only-sessions", "-p2p", "/dev/null"}} {
		if _, err := parseFlags(args, &strings.Builder{}); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

func TestSessionsSection(t *testing.T) {
	r := sessionResult{idle: sessionPoint{rssKB: 10240, hwmKB: 10240, fds: 12, threads: 7, cliHeap: 1 << 20, cliGoroutine: 4, cpuPct: 0.05},
		points: []sessionPoint{{n: 100, rssKB: 10240 + 3000, hwmKB: 14000, fds: 112, threads: 8, cliHeap: 1<<20 + 100*50*1024, cliGoroutine: 4 + 1200, cpuPct: 1.5, writesPerMin: 2000, bytesPerMin: 100000}},
		took:   3 * time.Second}
	sec := sessionsSection(r, "go run ./bench -only-sessions", "2026-12-02 16:00 UTC")
	for _, want := range []string{sessionsHeader, "| 0 (idle) | 10.0 | 10.0 | – | 12 | 7 | 0.05 | – | – | – |", "| 100 | 12.9 | 13.7 | 30.0 | 112 | 8 | 1.50 | 20.0 (1000) | 50.0 | 12.0 |"} {
		if !strings.Contains(sec, want) {
			t.Errorf("section lacks %q:\n%s", want, sec)
		}
	}
	doc := "# hop benchmarks\n\n## Results\n\ntable\n\n## How to read this\n\ntext\n"
	once, err := spliceSessions(doc, sec)
	if err != nil || !strings.Contains(once, "table\n\n"+sec+"\n## How to read this") {
		t.Fatalf("inserted: %v\n%s", err, once)
	}
	twice, err := spliceSessions(once, strings.Replace(sec, "| 100 |", "| 101 |", 1))
	if err != nil || strings.Count(twice, sessionsHeader) != 1 || !strings.Contains(twice, "| 101 |") || strings.Contains(twice, "| 100 |") ||
		!strings.HasSuffix(twice, "## How to read this\n\ntext\n") {
		t.Fatalf("replaced: %v\n%s", err, twice)
	}
	if _, err := spliceSessions("# something else\n", sec); err == nil {
		t.Error("splice into a document without the anchor succeeded")
	}
}

// TestSessionsPhase runs the phase with a few clients against a freshly
// built hops: every client logs in, hops counts them, and the readings
// are there (never how much they are).
func TestSessionsPhase(t *testing.T) {
	if testing.Short() {
		t.Skip("builds hops")
	}
	ctx := context.Background()
	defer func(w time.Duration) { cpuWindow = w }(cpuWindow)
	cpuWindow = 200 * time.Millisecond
	dir := t.TempDir()
	hops, _, _, err := build(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := sessions(ctx, dir, hops, []int{3, 20}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.points) != 2 || r.points[0].n != 3 || r.points[1].n != 20 {
		t.Fatalf("points %+v", r.points)
	}
	for _, p := range append([]sessionPoint{r.idle}, r.points...) {
		if p.rssKB <= 0 || p.hwmKB < p.rssKB || p.fds <= 0 || p.threads <= 0 || p.cliHeap <= 0 || p.cpuPct < 0 || p.writesPerMin < 0 {
			t.Errorf("reading %+v", p)
		}
	}
	if got := r.points[1].fds - r.idle.fds; got < 20 {
		t.Errorf("hops has %d more open files with 20 sessions, want 20 or more", got)
	}
	if r.points[1].cliGoroutine <= r.idle.cliGoroutine {
		t.Errorf("no goroutines for 20 clients: %+v", r)
	}
}
