package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hopproxy/hop/pkg/client"
	"github.com/hopproxy/hop/pkg/config"
)

// The sessions phase: what an idle client session costs hops. One hops
// process; N hopc clients logged in from this process (pkg/client, the
// code hopc runs), with no proxies, default heartbeat and mux keepalive;
// hops' VmRSS and open files idle and with N sessions. The counts grow
// one after the other (100, then 900 more for 1000), on the same hops.

// sessionPoint is one count of sessions and what it cost.
type sessionPoint struct {
	n                     int
	rssKB, hwmKB          int64   // hops' VmRSS, VmHWM
	fds, threads          int     // hops' open files and OS threads
	cliHeap, cliGoroutine int64   // this process (the clients): Go heap+stacks in use (bytes) and goroutines
	cpuPct                float64 // hops' CPU (utime+stime) over cpuWindow while the sessions idle, % of one core
	// hops' write syscalls and bytes written per minute over cpuWindow
	// (/proc/PID/io syscw, wchar): with idle sessions, the heartbeats and
	// mux keepalives hops sends.
	writesPerMin, bytesPerMin float64
}

// cpuWindow is how long hops' CPU is read with the sessions idle: long
// enough to cover a heartbeat interval (10s) and a mux keepalive (15s).
var cpuWindow = 20 * time.Second

// sessionResult is the whole phase.
type sessionResult struct {
	idle   sessionPoint // n = 0: hops before any login, this process before any client
	points []sessionPoint
	took   time.Duration
}

// maxLoginsInFlight bounds the logins in progress at once, under the
// limits.maxHandshakesPerIP the phase gives hops (every client comes
// from 127.0.0.1).
const maxLoginsInFlight = 16

// parseCounts reads -sessions: increasing positive counts, comma
// separated; "" or "0" turns the phase off.
func parseCounts(s string) ([]int, error) {
	if s == "" || s == "0" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 20000 {
			return nil, fmt.Errorf("-sessions %q: %q is not a count of sessions 1-20000", s, f)
		}
		if len(out) > 0 && n <= out[len(out)-1] {
			return nil, fmt.Errorf("-sessions %q: counts must increase (each adds sessions to the previous one)", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// sessions runs the phase against the hops binary hopsBin.
func sessions(ctx context.Context, dir, hopsBin string, counts []int, logf func(string, ...any)) (res sessionResult, err error) {
	begin := time.Now()
	ports, err := freePorts(2)
	if err != nil {
		return res, err
	}
	port, web := ports[0], ports[1]
	// Defaults but for loopback, no second STUN port, the web API (to
	// count sessions), and room for the concurrent logins from one IP.
	conf := fmt.Sprintf("bindAddr = \"127.0.0.1\"\nbindPort = %d\nproxyBindAddr = \"127.0.0.1\"\nauth.token = %q\np2p.stunAltPort = 0\n"+
		"[webServer]\nport = %d\n[limits]\nmaxHandshakesPerIP = %d\n", port, token, web, 2*maxLoginsInFlight)
	cf := filepath.Join(dir, "hops-sessions.toml")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		return res, err
	}
	srv, err := startProc("hops", hopsBin, "-c", cf)
	if err != nil {
		return res, err
	}
	defer func() {
		if serr := srv.stop(20 * time.Second); serr != nil && err == nil {
			err = serr
		}
	}()
	info := fmt.Sprintf("http://127.0.0.1:%d/api/serverinfo", web)
	connected := func() (int, error) {
		c := http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get(info)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var si struct {
			ClientsConnected int `json:"clientsConnected"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&si); err != nil {
			return 0, err
		}
		return si.ClientsConnected, nil
	}
	if err := poll(ctx, 20*time.Second, func() bool {
		_, err := connected()
		return err == nil || !srv.running()
	}, func() string { return "timed out waiting for hops' /api/serverinfo\n" + srv.log.String() }); err != nil {
		return res, err
	}
	if !srv.running() {
		return res, fmt.Errorf("hops exited at start: %v\n%s", srv.err, srv.log.String())
	}

	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var clients []*client.Client
	var mu sync.Mutex
	var runErrs []error
	defer func() { // every client logs out before hops stops
		cancel()
		wg.Wait()
		if e := errors.Join(runErrs...); e != nil && err == nil {
			err = fmt.Errorf("a client's Run: %w", e)
		}
	}()
	point := func(n int) (sessionPoint, error) {
		st, err := settle(ctx, []*proc{srv})
		if err != nil {
			return sessionPoint{}, err
		}
		_, hwm, err := memKB(srv.cmd.Process.Pid)
		if err != nil {
			return sessionPoint{}, err
		}
		th, err := threads(srv.cmd.Process.Pid)
		if err != nil {
			return sessionPoint{}, err
		}
		c0, err := cpuSeconds(srv.cmd.Process.Pid)
		if err != nil {
			return sessionPoint{}, err
		}
		w0, b0, err := writes(srv.cmd.Process.Pid)
		if err != nil {
			return sessionPoint{}, err
		}
		t0 := time.Now()
		if err := sleep(ctx, cpuWindow); err != nil {
			return sessionPoint{}, err
		}
		c1, err := cpuSeconds(srv.cmd.Process.Pid)
		if err != nil {
			return sessionPoint{}, err
		}
		w1, b1, err := writes(srv.cmd.Process.Pid)
		if err != nil {
			return sessionPoint{}, err
		}
		secs := time.Since(t0).Seconds()
		cpu := 100 * (c1 - c0) / secs
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return sessionPoint{n: n, rssKB: st[0].rss, hwmKB: hwm, fds: st[0].fds, threads: th,
			cliHeap: int64(ms.HeapInuse + ms.StackInuse), cliGoroutine: int64(runtime.NumGoroutine()), cpuPct: cpu,
			writesPerMin: float64(w1-w0) * 60 / secs, bytesPerMin: float64(b1-b0) * 60 / secs}, nil
	}
	if res.idle, err = point(0); err != nil {
		return res, err
	}
	logf("  sessions: hops idle RSS %d KiB, %d open files, %d threads", res.idle.rssKB, res.idle.fds, res.idle.threads)
	log := slog.New(slog.DiscardHandler)
	for _, n := range counts {
		for len(clients) < n {
			batch := min(maxLoginsInFlight, n-len(clients))
			var started []*client.Client
			for range batch {
				cfg := config.DefaultClient()
				cfg.ServerAddr, cfg.ServerPort, cfg.Auth.Token = "127.0.0.1", port, token
				cfg.ClientID = fmt.Sprintf("bench-%d", len(clients)+len(started))
				c, err := client.New(&cfg, log)
				if err != nil {
					return res, err
				}
				started = append(started, c)
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := c.Run(cctx); err != nil {
						mu.Lock()
						runErrs = append(runErrs, err)
						mu.Unlock()
					}
				}()
			}
			clients = append(clients, started...)
			if err := poll(ctx, 60*time.Second, func() bool {
				for _, c := range started {
					if !c.Stats().LoggedIn {
						return false
					}
				}
				return true
			}, func() string {
				for _, c := range started {
					if s := c.Stats(); !s.LoggedIn {
						return fmt.Sprintf("client %s did not log in within 60 s (%d logged in so far); last cause: %v\nhops log:\n%s", c.ID(), len(clients)-batch, s.LastCause, srv.log.String())
					}
				}
				return "timed out"
			}); err != nil {
				return res, err
			}
		}
		// hops counts them too.
		var got int
		if err := poll(ctx, 30*time.Second, func() bool { got, _ = connected(); return got == n }, func() string {
			return fmt.Sprintf("hops reports %d clients connected, want %d", got, n)
		}); err != nil {
			return res, err
		}
		p, err := point(n)
		if err != nil {
			return res, err
		}
		res.points = append(res.points, p)
		logf("  sessions: %d logged in: hops RSS %d KiB (peak %d), %d open files, %d threads, CPU %.2f%%; clients' heap+stacks %d KiB, %d goroutines",
			n, p.rssKB, p.hwmKB, p.fds, p.threads, p.cpuPct, p.cliHeap>>10, p.cliGoroutine)
	}
	if !srv.running() {
		return res, fmt.Errorf("hops exited: %v\n%s", srv.err, srv.log.String())
	}
	res.took = time.Since(begin)
	return res, nil
}

// writes returns the write syscalls and bytes written so far by pid
// (syscw and wchar of /proc/PID/io).
func writes(pid int) (calls, bytes int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, 0, err
	}
	found := 0
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "syscw" && k != "wchar") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/io: %s: %w", pid, k, err)
		}
		if k == "syscw" {
			calls = n
		} else {
			bytes = n
		}
		found++
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("/proc/%d/io: no syscw or wchar", pid)
	}
	return calls, bytes, nil
}

// threads returns the Threads line of /proc/PID/status.
func threads(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no Threads line", pid)
}

// sessionsSection renders the phase as a Markdown section. command and
// date say which run produced it (a -only-sessions run splices it into an
// existing report).
func sessionsSection(r sessionResult, command, date string) string {
	var b strings.Builder
	b.WriteString(sessionsHeader + "\n\n")
	fmt.Fprintf(&b, "Measured by `%s` (%s, took %s):\n", command, date, r.took.Round(time.Second))
	b.WriteString("N clients log in to one hops from the bench process with pkg/client (what hopc runs),\n" +
		"no proxies, default heartbeat (10s) and mux keepalive (15s); hops with its\n" +
		"defaults on loopback. The counts are cumulative on one hops.\n\n")
	b.WriteString("| sessions | hops VmRSS, MiB | hops VmHWM, MiB | hops RSS per session, KiB | hops open files | hops threads | hops CPU while idle, % of a core | hops writes per session per minute (bytes) | clients' Go heap+stacks per session, KiB | clients' goroutines per session |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	fmt.Fprintf(&b, "| 0 (idle) | %s | %s | – | %d | %d | %s | – | – | – |\n", num(mib(r.idle.rssKB)), num(mib(r.idle.hwmKB)), r.idle.fds, r.idle.threads, num(r.idle.cpuPct))
	for _, p := range r.points {
		n := float64(p.n)
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %d | %d | %s | %s (%s) | %s | %s |\n", p.n, num(mib(p.rssKB)), num(mib(p.hwmKB)),
			num(float64(p.rssKB-r.idle.rssKB)/n), p.fds, p.threads, num(p.cpuPct),
			num((p.writesPerMin-r.idle.writesPerMin)/n), num((p.bytesPerMin-r.idle.bytesPerMin)/n),
			num(float64(p.cliHeap-r.idle.cliHeap)/1024/n), num(float64(p.cliGoroutine-r.idle.cliGoroutine)/n))
	}
	b.WriteString("\n- **RSS per session** is (VmRSS with N sessions − idle VmRSS) / N, read once\n" +
		"  VmRSS has stayed within 1% for a second (at most 10 s). It includes the\n" +
		"  garbage the logins left that no collection has freed yet, so it is an\n" +
		"  upper bound; VmHWM is the peak over the whole phase, logins included.\n" +
		"- **Open files** are hops' /proc/PID/fd: one socket per session.\n" +
		"- **CPU while idle** is hops' utime + stime (/proc/PID/stat, 10 ms ticks)\n" +
		"  over " + cpuWindow.String() + " with the sessions idle (heartbeats and mux keepalives only),\n" +
		"  as a percentage of one core; the clients share the same cores.\n" +
		"- **Writes per session per minute** are hops' write syscalls (and the\n" +
		"  bytes they wrote, TLS records included) over the same window, from\n" +
		"  /proc/PID/io syscw and wchar, minus the idle rate, per session: what\n" +
		"  hops sends an idle session (its heartbeat pings, pongs to hopc's,\n" +
		"  mux keepalive pings and answers); hopc sends about as many.\n" +
		"- **Clients' figures** are the client side of a session (hopc keeps one\n" +
		"  per node it attaches to): Go heap and stacks in use after a forced\n" +
		"  collection in the bench process, and goroutines, both minus the figures\n" +
		"  before the first client, divided by N. hops has no Go runtime series,\n" +
		"  so its goroutines are not counted; its OS threads are.\n")
	return b.String()
}

const sessionsHeader = "## Idle client sessions (memory per session)"

// spliceSessions replaces the sessions section of an existing report
// (or inserts it before "## How to read this") and returns the result.
func spliceSessions(doc, section string) (string, error) {
	if i := strings.Index(doc, sessionsHeader); i >= 0 {
		rest := doc[i+len(sessionsHeader):]
		end := len(doc)
		if j := strings.Index(rest, "\n## "); j >= 0 {
			end = i + len(sessionsHeader) + j + 1
		}
		return doc[:i] + section + "\n" + doc[end:], nil
	}
	const anchor = "## How to read this"
	i := strings.Index(doc, anchor)
	if i < 0 {
		return "", fmt.Errorf("the report has neither %q nor %q: run the whole bench to make one", sessionsHeader, anchor)
	}
	return doc[:i] + section + "\n" + doc[i:], nil
}
