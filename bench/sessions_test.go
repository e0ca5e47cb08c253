package main

import (
	"context"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSessionFlags(t *testing.T) {
	o, err := parseFlags(nil, os.Stderr)
	if err != nil || !slices.Equal(o.sessions, []int{100, 1000}) || o.restart != restartAll {
		t.Fatalf("default -sessions, -restart: %v %q %v", o.sessions, o.restart, err)
	}
	if o, _ := parseFlags([]string{"-quick"}, os.Stderr); !slices.Equal(o.sessions, []int{10, 50}) {
		t.Errorf("-quick sessions %v", o.sessions)
	}
	if o, _ := parseFlags([]string{"-sessions", "0"}, os.Stderr); o.sessions != nil {
		t.Errorf("-sessions 0: %v", o.sessions)
	}
	if o, _ := parseFlags([]string{"-only-sessions"}, os.Stderr); !slices.Equal(o.sessions, []int{100, 1000, 2500, 5000, 10000}) {
		t.Errorf("-only-sessions: sessions %v", o.sessions)
	}
	if o, _ := parseFlags([]string{"-only-sessions", "-sessions", "50,60", "-restart", "top"}, os.Stderr); !slices.Equal(o.sessions, []int{50, 60}) || o.restart != restartTop {
		t.Errorf("-only-sessions -sessions 50,60 -restart top: %v %q", o.sessions, o.restart)
	}
	for _, args := range [][]string{{"-sessions", "100,50"}, {"-sessions", "x"}, {"-sessions", "-3"}, {"-sessions", "20001"}, {"-sessions", "0", "-only-sessions"},
		{"-only-sessions", "-p2p", "/dev/null"}, {"-restart", "sometimes"}, {"-restart", ""}} {
		if _, err := parseFlags(args, &strings.Builder{}); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

func TestSourceIP(t *testing.T) {
	seen := map[string]bool{}
	lo := netip.MustParsePrefix("127.0.0.0/8")
	for i := range maxSessions {
		s := sourceIP(i)
		a, err := netip.ParseAddr(s)
		if err != nil || !lo.Contains(a) || seen[s] {
			t.Fatalf("client %d: %q (%v), seen before: %v", i, s, err, seen[s])
		}
		if b := a.As4(); b[1] == 0 || b[3] == 0 || b[3] == 255 {
			t.Fatalf("client %d: %s is in 127.0/16 or ends in .0 or .255", i, s)
		}
		seen[s] = true
	}
	if sourceIP(0) != "127.1.0.1" || sourceIP(254) != "127.1.1.1" {
		t.Errorf("first addresses %s, %s", sourceIP(0), sourceIP(254))
	}
}

func TestParseRefused(t *testing.T) {
	text := "# HELP hop_logins_refused_total Logins refused.\n# TYPE hop_logins_refused_total counter\n" +
		"hop_logins_refused_total{node=\"a:7000\",reason=\"auth_failed\"} 0\n" +
		"hop_logins_refused_total{node=\"a:7000\",reason=\"too_many_handshakes\"} 12\n" +
		"hop_logins_refused_total{node=\"b:7000\",reason=\"too_many_handshakes\"} 3\n" +
		"hop_logins_refused_totally{reason=\"x\"} 5\nhop_sessions 4\n"
	got, err := parseRefused(text)
	if err != nil || got["too_many_handshakes"] != 15 || got["auth_failed"] != 0 || len(got) != 2 {
		t.Fatalf("parseRefused: %v %v", got, err)
	}
	if got, err := parseRefused("# TYPE hop_logins_refused_total counter\n"); err != nil || len(got) != 0 {
		t.Errorf("no samples yet: %v %v", got, err)
	}
	for _, bad := range []string{"hop_sessions 4\n", "hop_logins_refused_total{node=\"a\"} 1\n", "hop_logins_refused_total{reason=\"tls\"} many\n", "hop_logins_refused_total{reason=\"tls\"}\n"} {
		if _, err := parseRefused(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if d := diffCounts(map[string]float64{"a": 1, "b": 2}, map[string]float64{"a": 1, "b": 5, "c": 1}); len(d) != 2 || d["b"] != 3 || d["c"] != 1 {
		t.Errorf("diffCounts: %v", d)
	}
}

func TestParseMaxOpenFiles(t *testing.T) {
	limits := "Limit                     Soft Limit           Hard Limit           Units     \n" +
		"Max processes             95000                95000                processes \n" +
		"Max open files            20000                20000                files     \n"
	if s, h, err := parseMaxOpenFiles(limits); err != nil || s != "20000" || h != "20000" {
		t.Errorf("got %q %q %v", s, h, err)
	}
	if _, _, err := parseMaxOpenFiles("Max processes 1 1 processes\n"); err == nil {
		t.Error("no Max open files line: no error")
	}
}

func TestSessionsSection(t *testing.T) {
	r := sessionResult{idle: sessionPoint{rssKB: 10240, hwmKB: 10240, fds: 12, threads: 7, cliHeap: 1 << 20, cliGoroutine: 4, cpuPct: 0.05},
		points: []sessionPoint{
			{n: 100, rssKB: 10240 + 3000, hwmKB: 14000, fds: 112, threads: 8, cliHeap: 1<<20 + 100*50*1024, cliGoroutine: 4 + 1200, cpuPct: 1.5, writesPerMin: 2000, bytesPerMin: 100000,
				proxies: 200, sources: 100, logins: 100, loginTime: 500 * time.Millisecond, loginCPU: 0.2,
				conns:   connResult{n: 3000, failed: 2, elapsed: 2 * time.Second},
				restart: &restartResult{stop: 100 * time.Millisecond, listen: 50 * time.Millisecond, back: 2 * time.Second, attempts: 150, rssKB: 20480, fds: 115}},
			{n: 1000, rssKB: 10240 + 100000, hwmKB: 120000, fds: 1012, threads: 9, cliHeap: 1<<20 + 1000*50*1024, cliGoroutine: 4 + 12000, cpuPct: 4,
				proxies: 2000, sources: 1000, logins: 900, loginTime: 3 * time.Second, loginCPU: 1.8, refused: map[string]float64{"tls": 1},
				conns: connResult{n: 4000, elapsed: 2 * time.Second},
				restart: &restartResult{stop: time.Second, listen: 60 * time.Millisecond, back: 70 * time.Second, attempts: 3000, rssKB: 102400, fds: 1015,
					refused: map[string]float64{"too_many_handshakes": 40, "tls": 2}}},
		},
		limits:  sessionLimits{benchSoft: 20000, benchHard: 20000, hopsSoft: "20000", hopsHard: "20000", hopsPeakFds: 1015, benchFds: 1030, portRange: "32768–60999"},
		restart: restartAll, took: 3 * time.Second}
	sec := sessionsSection(r, "go run ./bench -only-sessions", "2026-12-02 16:00 UTC")
	for _, want := range []string{sessionsHeader,
		"| 0 (idle) | 0 | – | 10.0 | 10.0 | – | 12 | 7 | 0.05 | – | – | – |",
		"| 100 | 200 | 100 | 12.9 | 13.7 | 30.0 | 112 | 8 | 1.50 | 20.0 (1000) | 50.0 | 12.0 |",
		"| 100 | 100 | 200 | 2.00 | 0 | 1500 (2) | 0.10 | 0.05 | 2.00 | 0 | 1.50 | 20.0 |",
		"| 1000 | 900 | 300 | 2.00 | 1 tls | 2000 (0) | 1.00 | 0.06 | 70.0 | 2 tls, 40 too_many_handshakes | 3.00 | 100 |",
		"- hops RSS per idle client: 100 KiB; target under 40 KB (39.1 KiB): **not met**.",
		"- hops CPU while idle: 4.00% of a core; target under 5%: met.",
		"all back in 70.0 s; target within 60 s: **not met**. Logins hops refused for overload (too_many_handshakes): 40; target none: **not met**.",
		// RSS per client 30 → 100 KiB (3.33×); idle CPU per client 0.0145 → 0.00395; CPU per login 2 ms both;
		// login time 5 → 3.33 ms; restart time per client 20 → 70 ms (3.5×).
		"RSS 3.33×, idle CPU 0.27×, hops CPU per login 1.00×, login time (1 / logins/s) 0.67×, restart time 3.50×. Worse than linear: RSS, restart time.",
		"hops had at most 1015 files open (1000 clients", "The range is 32768–60999."} {
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
	if err != nil || strings.Count(twice, sessionsHeader) != 1 || !strings.Contains(twice, "| 101 |") || strings.Contains(twice, "| 100 | 200 | 100 |") ||
		!strings.HasSuffix(twice, "## How to read this\n\ntext\n") {
		t.Fatalf("replaced: %v\n%s", err, twice)
	}
	old := "# hop benchmarks\n\n" + oldSessionsHeaders[0] + "\n\nold table\n\n## How to read this\n\ntext\n"
	if got, err := spliceSessions(old, sec); err != nil || strings.Contains(got, "old table") || strings.Count(got, sessionsHeader) != 1 {
		t.Errorf("replacing the section under its old header: %v\n%s", err, got)
	}
	if _, err := spliceSessions("# something else\n", sec); err == nil {
		t.Error("splice into a document without the anchor succeeded")
	}
	r.points = r.points[:1]
	r.points[0].restart = nil
	r.restart = restartNone
	sec = sessionsSection(r, "go run ./bench -only-sessions -restart none", "2026-12-02 16:00 UTC")
	for _, want := range []string{"| 100 | 100 | 200 | 2.00 | 0 | 1500 (2) | – | – | – | – | – | – |", "- restart: not run at this count", "hops is not restarted."} {
		if !strings.Contains(sec, want) {
			t.Errorf("section without restarts lacks %q:\n%s", want, sec)
		}
	}
}

// TestSessionsPhase runs the phase with a few clients against a freshly
// built hops: every client logs in from its own address with its two
// proxies, connections pass through the group, every client comes back
// after a restart, and the readings are there (never how much they are).
func TestSessionsPhase(t *testing.T) {
	if testing.Short() {
		t.Skip("builds hops")
	}
	ctx := context.Background()
	defer func(w, c time.Duration) { cpuWindow, connWindow = w, c }(cpuWindow, connWindow)
	cpuWindow, connWindow = 200*time.Millisecond, 200*time.Millisecond
	dir := t.TempDir()
	hops, _, _, err := build(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := sessions(ctx, dir, hops, []int{3, 20}, restartAll, t.Logf)
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
	for i, p := range r.points {
		if p.proxies != 2*p.n || p.sources != p.n {
			t.Errorf("%d clients: hops has %d proxies from %d source addresses, want %d from %d", p.n, p.proxies, p.sources, 2*p.n, p.n)
		}
		if want := []int{3, 17}[i]; p.logins != want || p.loginTime <= 0 {
			t.Errorf("%d clients: %d logins in %v, want %d", p.n, p.logins, p.loginTime, want)
		}
		if p.conns.n == 0 {
			t.Errorf("%d clients: no connection through the group", p.n)
		}
		rr := p.restart
		if rr == nil {
			t.Fatalf("%d clients: no restart", p.n)
		}
		if rr.back <= 0 || rr.attempts < p.n || rr.rssKB <= 0 || rr.fds < p.n || rr.refused == nil {
			t.Errorf("%d clients: restart %+v", p.n, rr)
		}
	}
	if got := r.points[1].fds - r.idle.fds; got < 20 {
		t.Errorf("hops has %d more open files with 20 sessions, want 20 or more", got)
	}
	if r.points[1].cliGoroutine <= r.idle.cliGoroutine {
		t.Errorf("no goroutines for 20 clients: %+v", r)
	}
	if r.limits.hopsSoft == "" || r.limits.benchHard == 0 || r.limits.portRange == "" || r.limits.benchFds < 20 {
		t.Errorf("limits %+v", r.limits)
	}
}
