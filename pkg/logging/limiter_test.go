package logging

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lines) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lines) all() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := strings.TrimSpace(b.buf.String())
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func (b *lines) logger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: level}))
}

// advance moves the bubble's fake clock by d and lets the timers due by
// then finish.
func advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

var moreRe = regexp.MustCompile(`\((\d+) more like this from `)

// counted adds up the lines and the counts of their summaries.
func counted(ls []string) int {
	n := 0
	for _, l := range ls {
		n++
		if m := moreRe.FindStringSubmatch(l); m != nil {
			k, _ := strconv.Atoi(m[1])
			n += k - 1 // the summary stands for k lines, itself not one of them
		}
	}
	return n
}

// TestJunkFlood is the attack in small: 3,000 failed handshakes from one
// address within a second give the first line and, 10 s later, one
// summary with the count.
func TestJunkFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out lines
		log := out.logger(slog.LevelInfo)
		var l Limiter
		for i := range 3000 {
			remote := fmt.Sprintf("198.51.100.7:%d", 10000+i)
			l.Log(t.Context(), log.With("remote", remote), slog.LevelInfo, Source(remote), "TLS handshake failed", "error", fmt.Sprintf("junk %d", i))
			time.Sleep(300 * time.Microsecond)
		}
		if got := out.all(); len(got) != 1 || !strings.Contains(got[0], "error=\"junk 0\"") {
			t.Fatalf("during the flood: %q", got)
		}
		advance(DefaultLimitInterval)
		got := out.all()
		if len(got) != 2 {
			t.Fatalf("after the window: %d lines:\n%s", len(got), strings.Join(got, "\n"))
		}
		want := `msg="TLS handshake failed (2999 more like this from 198.51.100.7 in the last 10s)" remote=198.51.100.7:12999 error="junk 2999"`
		if !strings.Contains(got[1], want) {
			t.Fatalf("summary %q\nwant it to contain %q", got[1], want)
		}
		// Quiet for a window: the next line is news again, logged at once.
		advance(DefaultLimitInterval)
		l.Log(t.Context(), log, slog.LevelInfo, "198.51.100.7", "TLS handshake failed", "error", "later")
		if got := out.all(); len(got) != 3 || !strings.Contains(got[2], `error=later`) || strings.Contains(got[2], "more like this") {
			t.Fatalf("after a quiet window: %q", got)
		}
	})
}

// TestSustainedFlood: a source that never stops gets one summary per
// interval, and every line is accounted for.
func TestSustainedFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out lines
		log := out.logger(slog.LevelInfo)
		l := Limiter{Interval: 2 * time.Second}
		const n = 700 // 35 s at 20 a second
		for range n {
			l.Log(t.Context(), log, slog.LevelWarn, "visitor-x", "visitor refused")
			time.Sleep(50 * time.Millisecond)
		}
		advance(l.Interval)
		got := out.all()
		if len(got) < 17 || len(got) > 19 { // the first, then one per 2 s
			t.Fatalf("%d lines for 35 s of flood at a 2 s interval:\n%s", len(got), strings.Join(got, "\n"))
		}
		if c := counted(got); c != n {
			t.Fatalf("lines account for %d events, want %d:\n%s", c, n, strings.Join(got, "\n"))
		}
		if !strings.Contains(got[1], "more like this from visitor-x in the last 2s") || !strings.Contains(got[1], "level=WARN") {
			t.Fatalf("summary %q", got[1])
		}
	})
}

// TestKeysAreIndependent: another message or another source is not held
// back by the first.
func TestKeysAreIndependent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out lines
		log := out.logger(slog.LevelInfo)
		var l Limiter
		for _, k := range [][2]string{{"a", "m1"}, {"b", "m1"}, {"a", "m2"}, {"a", "m1"}} {
			l.Log(t.Context(), log, slog.LevelInfo, k[0], k[1])
		}
		if got := out.all(); len(got) != 3 {
			t.Fatalf("%q", got)
		}
		advance(DefaultLimitInterval)
		if got := out.all(); len(got) != 4 || !strings.Contains(got[3], `msg="m1 (1 more like this from a in the last 10s)"`) {
			t.Fatalf("%q", got)
		}
	})
}

// TestBoundedMemory: a flood from more sources than MaxKeys keeps at most
// MaxKeys of them, and the count of a dropped one is still logged.
func TestBoundedMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out lines
		log := out.logger(slog.LevelInfo)
		l := Limiter{MaxKeys: 8}
		l.Log(t.Context(), log, slog.LevelInfo, "first", "junk")
		l.Log(t.Context(), log, slog.LevelInfo, "first", "junk") // held back
		for i := range 1000 {
			l.Log(t.Context(), log, slog.LevelInfo, fmt.Sprintf("10.0.%d.%d", i/256, i%256), "junk")
			if l.Len() > 8 {
				t.Fatalf("%d keys remembered, MaxKeys is 8", l.Len())
			}
		}
		got := out.all()
		if n := strings.Count(strings.Join(got, "\n"), "junk (1 more like this from first in the last 10s)"); len(got) != 1002 || n != 1 {
			t.Fatalf("%d lines, %d summaries of the evicted source, want 1002 and 1", len(got), n)
		}
		advance(DefaultLimitInterval)
		if n := len(out.all()); n != 1002 {
			t.Fatalf("%d lines after the window, want no more", n)
		}
	})
}

// TestFlush logs the pending summaries at once, and no timer logs them
// again.
func TestFlush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out lines
		log := out.logger(slog.LevelInfo)
		var l Limiter
		for range 5 {
			l.Log(t.Context(), log, slog.LevelInfo, "s", "m")
		}
		l.Flush()
		if got := out.all(); len(got) != 2 || !strings.Contains(got[1], "(4 more like this from s") {
			t.Fatalf("%q", got)
		}
		advance(2 * DefaultLimitInterval)
		if got := out.all(); len(got) != 2 {
			t.Fatalf("after Flush and a window: %q", got)
		}
	})
}

// TestDisabledLevelIsFree: a line the logger would drop is not counted.
func TestDisabledLevelIsFree(t *testing.T) {
	var out lines
	var l Limiter
	for range 100 {
		l.Log(context.Background(), out.logger(slog.LevelInfo), slog.LevelDebug, "probe", "TLS handshake failed")
	}
	if l.Len() != 0 || len(out.all()) != 0 {
		t.Fatalf("%d keys, %q", l.Len(), out.all())
	}
}

func TestSource(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:443":              "192.0.2.1",
		"192.0.2.1":                  "192.0.2.1",
		"[::ffff:192.0.2.1]:80":      "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::/64",
		"[fe80::1%eth0]:22":          "fe80::/64",
		"2001:db8::1":                "2001:db8::/64",
		"hopc-visitor":               "hopc-visitor",
		"":                           "",
	} {
		if got := Source(in); got != want {
			t.Errorf("Source(%q) = %q, want %q", in, got, want)
		}
	}
}
