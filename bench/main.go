// Command bench measures hop against a direct loopback connection: bulk
// throughput, 64-byte round trips, new connections per second, HTTP
// requests per second and latency through the vhost HTTP port with
// keep-alive, and the memory and CPU of hops and hopc. It builds and runs
// the real binaries and is not part of go test:
//
//	go run ./bench                           # 3 repetitions, Markdown to stdout
//	go run ./bench -runs 3 -out BENCHMARKS.md
//	go run ./bench -quick                    # a short smoke run of the harness
//	go run ./bench -only-sessions -out BENCHMARKS.md   # only the scale phase (100 to 10,000 clients), spliced into the report
//
// BENCHMARKS.md says how to read the figures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	p2p                      string // file with the P2P benchmark's output
	p2pText                  string // its contents, read before the run
	runs                     int
	dur, warmup              time.Duration
	rtts, idle, maxConns     int
	httpReqs, maxReqs        int
	out                      string
	hops, hopc               string
	otherServer, otherClient string
	otherKind                string
	note                     string
	sessions                 []int  // -sessions: counts of client sessions
	restart                  string // -restart: at which counts the scale phase restarts hops
	onlySessions             bool
}

// onlySessionsCounts is -sessions with -only-sessions: the curve of issue
// 14, up to 10,000 clients.
const onlySessionsCounts = "100,1000,2500,5000,10000"

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.runs, "runs", 3, "repetitions of every figure")
	fs.DurationVar(&o.dur, "duration", 3*time.Second, "length of each throughput and connection-rate phase")
	fs.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "unmeasured start of each throughput phase")
	fs.IntVar(&o.rtts, "rtts", 20000, "64-byte round trips measured per repetition")
	fs.IntVar(&o.idle, "idle", 1000, "idle proxied connections held open for the memory figures")
	fs.IntVar(&o.maxConns, "max-conns", 50000, "most connections per connection-rate phase")
	fs.IntVar(&o.httpReqs, "http-reqs", 10000, "HTTP requests timed one at a time per repetition, for the latency figures")
	fs.IntVar(&o.maxReqs, "max-reqs", 1000000, "most HTTP requests per request-rate phase")
	fs.StringVar(&o.out, "out", "", "also write the report to this file, e.g. BENCHMARKS.md")
	fs.StringVar(&o.p2p, "p2p", "", "output of `go test -run '^$' -bench P2P ./tests/e2e` (root, netlab) to include in the report")
	fs.StringVar(&o.hops, "hops", "", "hops binary to use (default: build it)")
	fs.StringVar(&o.hopc, "hopc", "", "hopc binary to use (default: build it)")
	fs.StringVar(&o.otherServer, "other-server", "", "optional: server binary of another proxy, measured as a third column")
	fs.StringVar(&o.otherClient, "other-client", "", "optional: its client binary")
	fs.StringVar(&o.otherKind, "other-kind", "frp", `kind of the other proxy, for its configs: "frp" (v0.52+)`)
	fs.StringVar(&o.note, "note", "", "a line about the conditions of the run, shown in the report's header")
	sessions := fs.String("sessions", "100,1000", "client sessions (2 proxies each) logged in to one hops for the scale figures: increasing counts, comma separated, at most 20000; 0 skips the phase (default "+onlySessionsCounts+" with -only-sessions)")
	restart := fs.String("restart", restartAll, `when the scale phase restarts hops to time the clients' return: "all" (every count), "top" (the last count) or "none"`)
	fs.BoolVar(&o.onlySessions, "only-sessions", false, "run only the scale phase (client sessions); with -out, replace (or add) its section in that existing report")
	quick := fs.Bool("quick", false, "smoke run: 1 repetition, 1 s phases, 2000 round trips and HTTP requests timed, 100 idle connections, 10 and 50 sessions (flags given explicitly win)")
	err := fs.Parse(args)
	if err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if o.p2p != "" {
		b, err := os.ReadFile(o.p2p)
		if err != nil {
			return o, fmt.Errorf("-p2p: %w", err)
		}
		o.p2pText = string(b)
	}
	if *quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, apply := range map[string]func(){
			"runs":      func() { o.runs = 1 },
			"duration":  func() { o.dur = time.Second },
			"warmup":    func() { o.warmup = 200 * time.Millisecond },
			"rtts":      func() { o.rtts = 2000 },
			"http-reqs": func() { o.httpReqs = 2000 },
			"idle":      func() { o.idle = 100 },
			"sessions":  func() { *sessions = "10,50" },
		} {
			if !set[name] {
				apply()
			}
		}
	}
	if o.onlySessions {
		set := false
		fs.Visit(func(f *flag.Flag) { set = set || f.Name == "sessions" })
		if !set {
			*sessions = onlySessionsCounts
		}
	}
	if o.sessions, err = parseCounts(*sessions); err != nil {
		return o, err
	}
	if o.restart, err = parseRestart(*restart); err != nil {
		return o, err
	}
	switch {
	case o.onlySessions && len(o.sessions) == 0:
		return o, errors.New("-only-sessions with -sessions 0: nothing to run")
	case o.onlySessions && (o.otherServer != "" || o.p2p != ""):
		return o, errors.New("-only-sessions measures hops alone: drop -other-server, -other-client and -p2p")
	case o.runs < 1 || o.dur <= 0 || o.warmup < 0 || o.rtts < 1 || o.idle < 1 || o.maxConns < 1 || o.httpReqs < 1 || o.maxReqs < 1:
		return o, errors.New("-runs, -duration, -rtts, -idle, -max-conns, -http-reqs and -max-reqs must be positive, -warmup not negative")
	case (o.hops == "") != (o.hopc == ""):
		return o, errors.New("give both -hops and -hopc, or neither")
	case (o.otherServer == "") != (o.otherClient == ""):
		return o, errors.New("give both -other-server and -other-client, or neither")
	case o.otherServer != "" && o.otherKind != "frp":
		return o, fmt.Errorf("-other-kind %q: only \"frp\" is known", o.otherKind)
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, "bench: "+format+"\n", args...) }
	begin := time.Now()

	dir, err := os.MkdirTemp("", "hop-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	source := "given with -hops and -hopc"
	if o.hops == "" {
		logf("building hops and hopc")
		if o.hops, o.hopc, source, err = build(ctx, dir); err != nil {
			return err
		}
	}
	command := shellJoin(append([]string{"go", "run", "./bench"}, args...))
	if o.onlySessions {
		sr, err := sessions(ctx, dir, o.hops, o.sessions, o.restart, logf)
		if err != nil {
			return fmt.Errorf("sessions: %w", err)
		}
		sec := sessionsSection(sr, command, begin.UTC().Format("2006-01-02 15:04 UTC"))
		fmt.Fprint(stdout, sec)
		if o.out != "" {
			doc, err := os.ReadFile(o.out)
			if err != nil {
				return fmt.Errorf("-only-sessions -out: %w", err)
			}
			md, err := spliceSessions(string(doc), sec)
			if err != nil {
				return fmt.Errorf("-out %s: %w", o.out, err)
			}
			if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
				return err
			}
			logf("replaced the sessions section of %s", o.out)
		}
		return nil
	}
	relay, err := buildRelay(ctx, dir)
	if err != nil {
		return err
	}
	sink, err := newSink()
	if err != nil {
		return err
	}
	defer sink.Close()
	echo, err := newEcho()
	if err != nil {
		return err
	}
	defer echo.Close()
	web, err := newHTTPBackend()
	if err != nil {
		return err
	}
	defer web.Close()

	targets := []*target{
		{name: "direct", sinkAddr: sink.Addr(), echoAddr: echo.Addr(), httpAddr: web.Addr()},
		{name: "hop", kind: hopKind(o.hops, o.hopc)},
		{name: "relay×2", kind: relayKind(relay)},
	}
	if o.otherServer != "" {
		targets = append(targets, &target{name: o.otherKind, kind: frpKind(o.otherServer, o.otherClient)})
	}
	var names []string
	for _, t := range targets {
		names = append(names, t.name)
	}
	res := newResults(names)
	b := &bench{o: o, sink: sink, echo: echo, web: web, res: res, logf: logf, dir: dir}
	for i := range o.runs {
		if err := b.repetition(ctx, i, targets); err != nil {
			return err
		}
	}

	sec := ""
	if len(o.sessions) > 0 {
		logf("client sessions")
		sr, err := sessions(ctx, dir, o.hops, o.sessions, o.restart, logf)
		if err != nil {
			return fmt.Errorf("sessions: %w", err)
		}
		sec = sessionsSection(sr, command, begin.UTC().Format("2006-01-02 15:04 UTC"))
	}
	md := report(collectMeta(o, args, begin, targets, source), res, sec)
	fmt.Fprint(stdout, md)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
			return err
		}
		logf("wrote %s", o.out)
	}
	return nil
}

// bench runs the repetitions and collects their figures.
type bench struct {
	o          options
	sink, echo *service
	web        *httpBackend
	res        *results
	logf       func(string, ...any)
	dir        string
}

// repetition starts the proxies, measures memory with idle connections,
// then every phase for each target in turn, and stops the proxies.
func (b *bench) repetition(ctx context.Context, i int, targets []*target) error {
	b.logf("repetition %d of %d", i+1, b.o.runs)
	var proxied []*target
	for _, t := range targets {
		if t.kind == nil {
			continue
		}
		proxied = append(proxied, t)
		if err := t.start(ctx, b.dir, b.sink, b.echo, b.web); err != nil {
			t.stop()
			return fmt.Errorf("starting %s: %w", t.name, err)
		}
		defer func() {
			if serr := t.stop(); serr != nil {
				b.logf("warning: %v", serr)
				b.res.warn("repetition %d, %s: %s", i+1, t.name, firstLine(serr.Error()))
			}
		}()
	}
	for _, t := range proxied {
		if err := b.memory(ctx, t); err != nil {
			return err
		}
	}

	// Alternate the order of the targets between repetitions.
	var order []*target
	for j := range targets {
		order = append(order, targets[(i+j)%len(targets)])
	}
	phases := []struct {
		name string
		fn   func(context.Context, *target) error
	}{
		{"throughput, 1 stream", func(ctx context.Context, t *target) error { return b.throughput(ctx, t, 1, "tput1", "cpu1") }},
		{"throughput, 8 streams", func(ctx context.Context, t *target) error { return b.throughput(ctx, t, 8, "tput8", "cpu8") }},
		{"round trips", b.rtt},
		{"connections, 1 worker", func(ctx context.Context, t *target) error { return b.conns(ctx, t, 1, "conn1") }},
		{"connections, 8 workers", func(ctx context.Context, t *target) error { return b.conns(ctx, t, 8, "conn8") }},
		{"HTTP requests, 1 worker", func(ctx context.Context, t *target) error { return b.httpRate(ctx, t, 1, "http1", "") }},
		{"HTTP requests, 8 workers", func(ctx context.Context, t *target) error { return b.httpRate(ctx, t, 8, "http8", "cpu_http8") }},
		{"HTTP latency", b.httpLatency},
	}
	for _, ph := range phases {
		for _, t := range order {
			if err := ph.fn(ctx, t); err != nil {
				return fmt.Errorf("%s, %s: %w", ph.name, t.name, err)
			}
		}
	}

	for _, t := range proxied {
		for j, p := range t.procs() {
			_, hwm, err := memKB(p.cmd.Process.Pid)
			if err != nil {
				return err
			}
			b.res.add(t.name, []string{"rss_srv_peak", "rss_cli_peak"}[j], mib(hwm))
		}
	}
	return nil
}

func mib(kb int64) float64 { return float64(kb) / 1024 }

// memory records the RSS of t's processes idle, with b.o.idle idle
// connections through t, and after closing them.
func (b *bench) memory(ctx context.Context, t *target) error {
	idle, err := settle(ctx, t.procs())
	if err != nil {
		return err
	}
	conns, err := openIdle(ctx, t.echoAddr, b.o.idle)
	if err != nil {
		return err
	}
	open, err := settle(ctx, t.procs())
	closeAll(conns)
	if err != nil {
		return err
	}
	if err := b.echo.waitIdle(ctx, 30*time.Second); err != nil {
		return fmt.Errorf("%s after closing %d idle connections: %w", t.name, len(conns), err)
	}
	closed, err := settle(ctx, t.procs())
	if err != nil {
		return err
	}
	for j, side := range []string{"srv", "cli"} {
		b.res.add(t.name, "rss_"+side+"_idle", mib(idle[j].rss))
		b.res.add(t.name, "rss_"+side+"_open", mib(open[j].rss))
		b.res.add(t.name, "rss_"+side+"_closed", mib(closed[j].rss))
		b.res.add(t.name, "fd_"+side+"_idle", float64(idle[j].fds))
		b.res.add(t.name, "fd_"+side+"_open", float64(open[j].fds))
		b.res.add(t.name, "fd_"+side+"_closed", float64(closed[j].fds))
	}
	b.res.add(t.name, "rss_per_conn", float64(open[0].rss+open[1].rss-idle[0].rss-idle[1].rss)/float64(b.o.idle))
	b.logf("  %-6s server, client: RSS KiB idle %d, %d; %d open %d, %d; closed %d, %d; fds %d, %d → %d, %d → %d, %d",
		t.name, idle[0].rss, idle[1].rss, b.o.idle, open[0].rss, open[1].rss, closed[0].rss, closed[1].rss,
		idle[0].fds, idle[1].fds, open[0].fds, open[1].fds, closed[0].fds, closed[1].fds)
	return nil
}

func (b *bench) throughput(ctx context.Context, t *target, streams int, key, cpuKey string) error {
	var cpu func() float64
	if t.kind != nil {
		cpu = t.cpu
	}
	r, err := throughput(ctx, t.sinkAddr, b.sink, streams, b.o.warmup, b.o.dur, cpu)
	if err != nil {
		return err
	}
	b.res.add(t.name, key, r.gbps())
	msg := fmt.Sprintf("  %-6s %s: %.2f Gbit/s", t.name, key, r.gbps())
	if cpu != nil {
		perGB := r.cpu / (float64(r.bytes) / 1e9)
		b.res.add(t.name, cpuKey, perGB)
		msg += fmt.Sprintf(", %.2f CPU s/GB", perGB)
	}
	b.logf("%s", msg)
	return nil
}

func (b *bench) rtt(ctx context.Context, t *target) error {
	ds, err := rtt(ctx, t.echoAddr, b.o.rtts, 2*time.Minute)
	if err != nil {
		return err
	}
	us := func(p float64) float64 { return float64(percentile(ds, p)) / float64(time.Microsecond) }
	b.res.add(t.name, "rtt50", us(50))
	b.res.add(t.name, "rtt99", us(99))
	b.res.add(t.name, "rtt999", us(99.9))
	b.logf("  %-6s rtt µs: p50 %.1f, p99 %.1f, p99.9 %.1f", t.name, us(50), us(99), us(99.9))
	return nil
}

func (b *bench) conns(ctx context.Context, t *target, workers int, key string) error {
	r, err := connRate(ctx, t.echoAddr, workers, b.o.dur, b.o.maxConns)
	if err != nil {
		return err
	}
	if r.failed > 0 {
		b.res.warn("%s, %d workers: %d of %d connections failed, first: %v", t.name, workers, r.failed, r.n+r.failed, r.firstErr)
	}
	b.res.add(t.name, key, r.rate())
	b.logf("  %-6s %s: %.0f conn/s (%d in %v, %d failed)", t.name, key, r.rate(), r.n, r.elapsed.Round(time.Millisecond), r.failed)
	// Let the proxy close its side before the next phase.
	return b.echo.waitIdle(ctx, 30*time.Second)
}

// httpRate measures HTTP requests/s through t with workers keep-alive
// connections; cpuKey, if not "", gets the proxy's CPU µs per request.
func (b *bench) httpRate(ctx context.Context, t *target, workers int, key, cpuKey string) error {
	var cpu func() float64
	if t.kind != nil && cpuKey != "" {
		cpu = t.cpu
	}
	cl := newHTTPClient(t.httpAddr, benchHost, b.web.body, workers)
	defer cl.Close()
	opened := b.web.opened.Load()
	r, err := httpRate(ctx, cl, workers, b.o.warmup, b.o.dur, b.o.maxReqs, cpu)
	if err != nil {
		return err
	}
	if r.dials > int64(workers) {
		b.res.warn("%s, HTTP %d workers: the client opened %d connections for %d requests, not %d: keep-alive connections were closed", t.name, workers, r.dials, r.total, workers)
	}
	b.res.add(t.name, key, r.rate())
	msg := fmt.Sprintf("  %-6s %s: %.0f req/s (%d in %v; %d connections, %d new to the backend)",
		t.name, key, r.rate(), r.n, r.elapsed.Round(time.Millisecond), r.dials, b.web.opened.Load()-opened)
	if cpu != nil {
		perReq := r.cpu / float64(r.n) * 1e6
		b.res.add(t.name, cpuKey, perReq)
		msg += fmt.Sprintf(", %.0f CPU µs/request", perReq)
	}
	b.logf("%s", msg)
	return nil
}

// httpLatency times b.o.httpReqs HTTP requests through t, one at a time
// on one keep-alive connection.
func (b *bench) httpLatency(ctx context.Context, t *target) error {
	cl := newHTTPClient(t.httpAddr, benchHost, b.web.body, 1)
	defer cl.Close()
	ds, err := httpLatency(ctx, cl, b.o.httpReqs, 2*time.Minute)
	if err != nil {
		return err
	}
	if n := cl.dials.Load(); n > 1 {
		b.res.warn("%s, HTTP latency: the client opened %d connections, not 1: keep-alive connections were closed", t.name, n)
	}
	us := func(p float64) float64 { return float64(percentile(ds, p)) / float64(time.Microsecond) }
	b.res.add(t.name, "http50", us(50))
	b.res.add(t.name, "http99", us(99))
	b.logf("  %-6s HTTP latency µs: p50 %.1f, p99 %.1f", t.name, us(50), us(99))
	return nil
}

// collectMeta describes the machine and the binaries; source is where hops
// and hopc came from.
func collectMeta(o options, args []string, begin time.Time, targets []*target, source string) meta {
	m := meta{
		p2p:     o.p2pText,
		note:    o.note,
		command: shellJoin(append([]string{"go", "run", "./bench"}, args...)),
		date:    begin.UTC().Format("2006-01-02 15:04 UTC"),
		cores:   runtime.NumCPU(),
		runs:    o.runs, rtts: o.rtts, httpReqs: o.httpReqs, idle: o.idle, dur: o.dur, warmup: o.warmup,
		took:      time.Since(begin),
		goVersion: "go version: " + runtime.Version() + " (bench)",
		cpu:       "unknown",
		kernel:    "unknown",
	}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		m.goVersion = strings.TrimSpace(string(out))
	}
	var bins []string
	for _, t := range targets {
		if t.kind == nil {
			continue
		}
		for _, bin := range []string{t.kind.server, t.kind.client} {
			// go version BINARY says which Go built it.
			v := "?"
			if out, err := exec.Command("go", "version", bin).Output(); err == nil {
				_, v, _ = strings.Cut(strings.TrimSpace(string(out)), ": ")
			}
			bins = append(bins, fmt.Sprintf("%s (%s)", filepath.Base(bin), v))
		}
	}
	m.binaries = strings.Join(bins, ", ") + "; hops and hopc: " + source
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	return m
}

// shellJoin joins args into a command line, quoting those a shell would
// split or expand.
func shellJoin(args []string) string {
	var out []string
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n\"'$`\\*?[]{}()<>|&;#~!") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out = append(out, a)
	}
	return strings.Join(out, " ")
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
