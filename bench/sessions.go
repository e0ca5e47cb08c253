package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hopproxy/hop/pkg/client"
	"github.com/hopproxy/hop/pkg/config"
)

// The scale phase (issue 14): many hopc sessions against one hops. One
// hops process with its default limits; N clients in this process
// (pkg/client, the code hopc runs), each from a source address of its own
// in 127.0.0.0/8 (transport.connectServerLocalIP), as clients on N hosts
// would be, each with two proxies: a tcp proxy in one load-balancing
// group that all clients share (one public port for all of them) to an
// echo service of this process, and an stcp proxy (no port). The counts
// grow one after the other on the same hops (100, then 900 more for
// 1000). At each count: the step's logins per second, hops' memory, files
// and CPU while the sessions idle, connections per second through the
// group, and a restart of hops (SIGTERM, then the same config) timed
// until every client is back with its proxies, reconnecting by its own
// backoff and jitter.

// sessionPoint is one count of clients and what it cost.
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

	proxies int // proxies hops has registered (GET /api/serverinfo)
	sources int // distinct source IP addresses of hops' online clients (GET /api/clients)
	// The logins of this step: how many, how long they took with
	// loginsInFlight at a time, hops' CPU seconds meanwhile, and what
	// hops refused meanwhile (hop_logins_refused_total by reason).
	logins    int
	loginTime time.Duration
	loginCPU  float64
	refused   map[string]float64
	conns     connResult     // connections through the group while all are attached
	restart   *restartResult // nil when hops was not restarted at this count
}

// restartResult is a restart of hops with every client attached.
type restartResult struct {
	stop   time.Duration // SIGTERM to hops' exit
	listen time.Duration // the new hops' start to its web API answering
	// back is the new hops' start to every client logged in again and
	// hops holding all clients and 2N proxies.
	back     time.Duration
	refused  map[string]float64 // the new hops' hop_logins_refused_total by reason
	attempts int                // the clients' connection attempts from SIGTERM until all were back
	rssKB    int64              // the new hops' VmRSS with every client back, settled
	fds      int
}

// sessionLimits are the limits the phase runs into, as read at its top
// count.
type sessionLimits struct {
	benchSoft, benchHard uint64 // RLIMIT_NOFILE of this process
	hopsSoft, hopsHard   string // hops' "Max open files" (/proc/PID/limits)
	hopsPeakFds          int    // the most files hops had open at a reading
	benchFds             int    // this process's open files at the top count
	portRange            string // /proc/sys/net/ipv4/ip_local_port_range
}

// cpuWindow is how long hops' CPU is read with the sessions idle: long
// enough to cover a heartbeat interval (10s) and a mux keepalive (15s).
var cpuWindow = 20 * time.Second

// connWindow is the length of the connection-rate phase at each count,
// connWorkers its concurrent connections.
var connWindow = 2 * time.Second

const connWorkers = 4

// sessionResult is the whole phase.
type sessionResult struct {
	idle    sessionPoint // n = 0: hops before any login, this process before any client
	points  []sessionPoint
	limits  sessionLimits
	restart string // the -restart mode
	took    time.Duration
}

// loginsInFlight bounds the logins in progress at once: half of hops'
// default limits.maxHandshakes (128), so that the ramp itself is not
// refused; every client has its own source address, so
// maxHandshakesPerIP (8) is never near.
const loginsInFlight = 64

// loginTimeout bounds one client's login in the ramp; restartTimeout the
// time for every client to come back after a restart.
const (
	loginTimeout   = 60 * time.Second
	restartTimeout = 150 * time.Second
)

// parseCounts reads -sessions: increasing positive counts, comma
// separated; "" or "0" turns the phase off.
func parseCounts(s string) ([]int, error) {
	if s == "" || s == "0" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > maxSessions {
			return nil, fmt.Errorf("-sessions %q: %q is not a count of sessions 1-%d", s, f, maxSessions)
		}
		if len(out) > 0 && n <= out[len(out)-1] {
			return nil, fmt.Errorf("-sessions %q: counts must increase (each adds sessions to the previous one)", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// maxSessions is the most clients the phase runs: sourceIP has an address
// for each, and the bench process needs a descriptor for each.
const maxSessions = 20000

// sourceIP is the source address of client i: 127.1.0.1, 127.1.0.2, …,
// 254 to a /24, never .0 or .255.
func sourceIP(i int) string {
	a := i / 254
	return fmt.Sprintf("127.%d.%d.%d", 1+a/256, a%256, i%254+1)
}

// Modes of -restart: at every count, at the top count only, or never.
const (
	restartAll  = "all"
	restartTop  = "top"
	restartNone = "none"
)

func parseRestart(s string) (string, error) {
	switch s {
	case restartAll, restartTop, restartNone:
		return s, nil
	}
	return "", fmt.Errorf("-restart %q: want %q, %q or %q", s, restartAll, restartTop, restartNone)
}

// parseRefused sums the samples of hop_logins_refused_total in a
// Prometheus text exposition by their reason label.
func parseRefused(text string) (map[string]float64, error) {
	const name = "hop_logins_refused_total"
	out := map[string]float64{}
	found := false
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "# TYPE "+name+" ") {
			found = true
		}
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			return nil, fmt.Errorf("%s: cannot read %q", name, line)
		}
		reason := ""
		for l := range strings.SplitSeq(labels, ",") {
			if v, ok := strings.CutPrefix(l, `reason="`); ok {
				reason = strings.TrimSuffix(v, `"`)
			}
		}
		if reason == "" {
			return nil, fmt.Errorf("%s: no reason label in %q", name, line)
		}
		v, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", name, line, err)
		}
		out[reason] += v
		found = true
	}
	if !found {
		return nil, fmt.Errorf("no %s in hops' /metrics", name)
	}
	return out, nil
}

// diffCounts returns b − a per key, leaving out zeros.
func diffCounts(a, b map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range b {
		if d := v - a[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// scaleRun is the state of the phase: hops and the clients.
type scaleRun struct {
	hopsBin, conf string
	web           int // hops' web API port
	groupAddr     string
	echoPort      int
	port          int // hops' bindPort
	srv           *proc
	logf          func(string, ...any)

	ctx     context.Context // the clients'
	wg      sync.WaitGroup
	clients []*client.Client
	mu      sync.Mutex
	runErrs []error
	log     *slog.Logger
}

// sessions runs the phase against the hops binary hopsBin; restart is a
// -restart mode.
func sessions(ctx context.Context, dir, hopsBin string, counts []int, restart string, logf func(string, ...any)) (res sessionResult, err error) {
	begin := time.Now()
	res.restart = restart
	ports, err := freePorts(3)
	if err != nil {
		return res, err
	}
	echo, err := newEcho()
	if err != nil {
		return res, err
	}
	defer echo.Close()
	r := &scaleRun{hopsBin: hopsBin, port: ports[0], web: ports[1], groupAddr: fmt.Sprintf("127.0.0.1:%d", ports[2]),
		echoPort: port(echo.Addr()), logf: logf, log: slog.New(slog.DiscardHandler)}
	// Defaults but for loopback, no second STUN port, the web API (to
	// count sessions and proxies) and /metrics (hops' refused logins).
	conf := fmt.Sprintf("bindAddr = \"127.0.0.1\"\nbindPort = %d\nproxyBindAddr = \"127.0.0.1\"\nauth.token = %q\np2p.stunAltPort = 0\nenablePrometheus = true\n"+
		"[webServer]\nport = %d\n", r.port, token, r.web)
	r.conf = filepath.Join(dir, "hops-sessions.toml")
	if err := os.WriteFile(r.conf, []byte(conf), 0o600); err != nil {
		return res, err
	}
	if err := r.startHops(ctx); err != nil {
		return res, err
	}
	defer func() {
		if serr := r.srv.stop(20 * time.Second); serr != nil && err == nil {
			err = serr
		}
	}()

	cctx, cancel := context.WithCancel(ctx)
	r.ctx = cctx
	defer func() { // every client logs out before hops stops
		cancel()
		done := make(chan struct{})
		go func() { r.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			if err == nil {
				err = fmt.Errorf("%d clients had not returned from Run 60 s after their cancel", len(r.clients))
			}
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if e := errors.Join(r.runErrs...); e != nil && err == nil {
			err = fmt.Errorf("a client's Run: %w", e)
		}
	}()

	if res.idle, err = r.point(ctx, 0); err != nil {
		return res, err
	}
	res.limits.hopsPeakFds = res.idle.fds
	logf("  sessions: hops idle RSS %d KiB, %d open files, %d threads", res.idle.rssKB, res.idle.fds, res.idle.threads)
	for k, n := range counts {
		refused0, err := r.refused()
		if err != nil {
			return res, err
		}
		c0, err := cpuSeconds(r.srv.cmd.Process.Pid)
		if err != nil {
			return res, err
		}
		added := n - len(r.clients)
		t0 := time.Now()
		if err := r.grow(ctx, n); err != nil {
			return res, err
		}
		took := time.Since(t0)
		c1, err := cpuSeconds(r.srv.cmd.Process.Pid)
		if err != nil {
			return res, err
		}
		if err := r.waitAttached(ctx, n, 60*time.Second); err != nil {
			return res, err
		}
		refused1, err := r.refused()
		if err != nil {
			return res, err
		}
		p, err := r.point(ctx, n)
		if err != nil {
			return res, err
		}
		p.logins, p.loginTime, p.loginCPU, p.refused = added, took, c1-c0, diffCounts(refused0, refused1)
		res.limits.hopsPeakFds = max(res.limits.hopsPeakFds, p.fds)
		logf("  sessions: %d attached (%d logins in %v, %.0f/s), %d proxies, %d source addresses: hops RSS %d KiB (peak %d), %d open files, %d threads, idle CPU %.2f%%; clients' heap+stacks %d KiB, %d goroutines",
			n, added, took.Round(time.Millisecond), float64(added)/took.Seconds(), p.proxies, p.sources, p.rssKB, p.hwmKB, p.fds, p.threads, p.cpuPct, p.cliHeap>>10, p.cliGoroutine)

		if p.conns, err = connRate(ctx, r.groupAddr, connWorkers, connWindow, 1_000_000); err != nil {
			return res, fmt.Errorf("connections through the group at %d clients: %w", n, err)
		}
		logf("  sessions: %d attached: %.0f conn/s through the group (%d in %v, %d failed)", n, p.conns.rate(), p.conns.n, p.conns.elapsed.Round(time.Millisecond), p.conns.failed)
		if err := echo.waitIdle(ctx, 30*time.Second); err != nil {
			return res, err
		}
		if k == len(counts)-1 {
			if res.limits, err = r.readLimits(res.limits); err != nil {
				return res, err
			}
		}
		if restart == restartAll || restart == restartTop && k == len(counts)-1 {
			rr, err := r.restart(ctx)
			if err != nil {
				return res, fmt.Errorf("restart at %d clients: %w", n, err)
			}
			p.restart = rr
			res.limits.hopsPeakFds = max(res.limits.hopsPeakFds, rr.fds)
			logf("  sessions: %d attached: hops restarted: stopped in %v, listening %v after its start, all back %v after its start; %d connection attempts; refused %v; RSS then %d KiB",
				n, rr.stop.Round(time.Millisecond), rr.listen.Round(time.Millisecond), rr.back.Round(time.Millisecond), rr.attempts, rr.refused, rr.rssKB)
		}
		res.points = append(res.points, p)
	}
	if !r.srv.running() {
		return res, fmt.Errorf("hops exited: %v\n%s", r.srv.err, r.srv.log.String())
	}
	res.took = time.Since(begin)
	return res, nil
}

// startHops starts hops and polls until its web API answers.
func (r *scaleRun) startHops(ctx context.Context) error {
	srv, err := startProc("hops", r.hopsBin, "-c", r.conf)
	if err != nil {
		return err
	}
	r.srv = srv
	if err := poll(ctx, 20*time.Second, func() bool {
		_, err := r.info()
		return err == nil || !srv.running()
	}, func() string { return "timed out waiting for hops' /api/serverinfo\n" + srv.log.String() }); err != nil {
		return err
	}
	if !srv.running() {
		return fmt.Errorf("hops exited at start: %v\n%s", srv.err, srv.log.String())
	}
	return nil
}

// serverInfo is the part of GET /api/serverinfo the phase reads.
type serverInfo struct {
	ClientsConnected int `json:"clientsConnected"`
	Proxies          int `json:"proxies"`
}

func (r *scaleRun) get(path string, v any) error {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", r.web, path))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	if s, ok := v.(*string); ok {
		b, err := io.ReadAll(resp.Body)
		*s = string(b)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (r *scaleRun) info() (serverInfo, error) {
	var si serverInfo
	err := r.get("/api/serverinfo", &si)
	return si, err
}

// refused reads hops' hop_logins_refused_total by reason.
func (r *scaleRun) refused() (map[string]float64, error) {
	var text string
	if err := r.get("/metrics", &text); err != nil {
		return nil, err
	}
	return parseRefused(text)
}

// sources counts the distinct IP addresses of hops' online clients.
func (r *scaleRun) sources() (int, error) {
	var cs []struct {
		Addr   string `json:"addr"`
		Online bool   `json:"online"`
	}
	if err := r.get("/api/clients", &cs); err != nil {
		return 0, err
	}
	ips := map[string]bool{}
	for _, c := range cs {
		if !c.Online {
			continue
		}
		host := c.Addr
		if i := strings.LastIndexByte(host, ':'); i >= 0 {
			host = host[:i]
		}
		ips[host] = true
	}
	return len(ips), nil
}

// newClient makes client i: its own source address and client ID, a tcp
// proxy in the shared group and an stcp proxy, both to the echo service.
func (r *scaleRun) newClient(i int) (*client.Client, error) {
	cfg := config.DefaultClient()
	cfg.ServerAddr, cfg.ServerPort, cfg.Auth.Token = "127.0.0.1", r.port, token
	cfg.ClientID = fmt.Sprintf("bench-%d", i)
	cfg.Transport.ConnectServerLocalIP = sourceIP(i)
	cfg.P2P.PortMapping = false // no xtcp here, so it is off anyway; never a gateway probe off loopback
	tcp := config.DefaultProxy(config.ProxyTCP)
	tcp.Name, tcp.LocalPort, tcp.RemotePort = fmt.Sprintf("g%d", i), r.echoPort, port(r.groupAddr)
	tcp.LoadBalancer = config.ProxyLoadBalancer{Group: "bench", GroupKey: "bench-group-key"}
	stcp := config.DefaultProxy(config.ProxySTCP)
	stcp.Name, stcp.LocalPort, stcp.SecretKey = fmt.Sprintf("s%d", i), r.echoPort, "bench-secret-key"
	cfg.Proxies = []config.ProxyConfig{tcp, stcp}
	return client.New(&cfg, r.log)
}

// grow starts clients until there are n, loginsInFlight logging in at a
// time, and returns once all have logged in.
func (r *scaleRun) grow(ctx context.Context, n int) error {
	sem := make(chan struct{}, loginsInFlight)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var fail error
	failed := func() bool { mu.Lock(); defer mu.Unlock(); return fail != nil }
	for len(r.clients) < n && !failed() {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		c, err := r.newClient(len(r.clients))
		if err != nil {
			<-sem
			wg.Wait()
			return err
		}
		r.clients = append(r.clients, c)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			if err := c.Run(r.ctx); err != nil {
				r.mu.Lock()
				r.runErrs = append(r.runErrs, err)
				r.mu.Unlock()
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			err := poll(ctx, loginTimeout, func() bool { return c.Stats().LoggedIn }, func() string {
				return fmt.Sprintf("client %s did not log in within %v; last cause: %v\nhops log:\n%s", c.ID(), loginTimeout, c.Stats().LastCause, r.srv.log.String())
			})
			if err != nil {
				mu.Lock()
				fail = cmpOr(fail, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return fail
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// waitAttached polls until hops reports n clients and 2n proxies.
func (r *scaleRun) waitAttached(ctx context.Context, n int, d time.Duration) error {
	var si serverInfo
	var err error
	return poll(ctx, d, func() bool {
		si, err = r.info()
		return err == nil && si.ClientsConnected == n && si.Proxies == 2*n
	}, func() string {
		return fmt.Sprintf("hops reports %d clients and %d proxies (%v), want %d and %d", si.ClientsConnected, si.Proxies, err, n, 2*n)
	})
}

// point reads hops' memory, files and threads once they settle, and its
// CPU and writes over cpuWindow.
func (r *scaleRun) point(ctx context.Context, n int) (sessionPoint, error) {
	pid := r.srv.cmd.Process.Pid
	st, err := settle(ctx, []*proc{r.srv})
	if err != nil {
		return sessionPoint{}, err
	}
	_, hwm, err := memKB(pid)
	if err != nil {
		return sessionPoint{}, err
	}
	th, err := threads(pid)
	if err != nil {
		return sessionPoint{}, err
	}
	si, err := r.info()
	if err != nil {
		return sessionPoint{}, err
	}
	src, err := r.sources()
	if err != nil {
		return sessionPoint{}, err
	}
	c0, err := cpuSeconds(pid)
	if err != nil {
		return sessionPoint{}, err
	}
	w0, b0, err := writes(pid)
	if err != nil {
		return sessionPoint{}, err
	}
	t0 := time.Now()
	if err := sleep(ctx, cpuWindow); err != nil {
		return sessionPoint{}, err
	}
	c1, err := cpuSeconds(pid)
	if err != nil {
		return sessionPoint{}, err
	}
	w1, b1, err := writes(pid)
	if err != nil {
		return sessionPoint{}, err
	}
	secs := time.Since(t0).Seconds()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return sessionPoint{n: n, rssKB: st[0].rss, hwmKB: hwm, fds: st[0].fds, threads: th,
		cliHeap: int64(ms.HeapInuse + ms.StackInuse), cliGoroutine: int64(runtime.NumGoroutine()), cpuPct: 100 * (c1 - c0) / secs,
		writesPerMin: float64(w1-w0) * 60 / secs, bytesPerMin: float64(b1-b0) * 60 / secs,
		proxies: si.Proxies, sources: src}, nil
}

// restart stops hops with SIGTERM, starts it again with the same config
// and times the clients' return: each reconnects by its own backoff.
func (r *scaleRun) restart(ctx context.Context) (*restartResult, error) {
	n := len(r.clients)
	before := make([]int, n)
	attempts0 := 0
	for i, c := range r.clients {
		s := c.Stats()
		before[i], attempts0 = s.Sessions, attempts0+s.Reconnects
	}
	old := r.srv
	pid := old.cmd.Process.Pid
	t0 := time.Now()
	if err := old.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return nil, fmt.Errorf("SIGTERM to hops (pid %d): %w", pid, err)
	}
	t := time.NewTimer(30 * time.Second)
	select {
	case <-old.done:
		t.Stop()
	case <-t.C:
		old.cmd.Process.Kill()
		<-old.done
		return nil, fmt.Errorf("hops (pid %d) did not exit within 30 s of SIGTERM; killed", pid)
	}
	if old.err != nil {
		return nil, fmt.Errorf("hops (pid %d) on SIGTERM: %v\n%s", pid, old.err, old.log.String())
	}
	rr := &restartResult{stop: time.Since(t0)}
	t1 := time.Now()
	if err := r.startHops(ctx); err != nil {
		return nil, err
	}
	rr.listen = time.Since(t1)
	pending := make([]int, n)
	for i := range pending {
		pending[i] = i
	}
	var si serverInfo
	if err := poll(ctx, restartTimeout, func() bool {
		keep := pending[:0]
		for _, i := range pending {
			if s := r.clients[i].Stats(); !s.LoggedIn || s.Sessions <= before[i] {
				keep = append(keep, i)
			}
		}
		pending = keep
		if len(pending) > 0 {
			return false
		}
		var err error
		si, err = r.info()
		return err == nil && si.ClientsConnected == n && si.Proxies == 2*n
	}, func() string {
		if len(pending) > 0 {
			c := r.clients[pending[0]]
			return fmt.Sprintf("%d of %d clients not back %v after hops restarted, e.g. %s: last cause %v\nhops log:\n%s",
				len(pending), n, restartTimeout, c.ID(), c.Stats().LastCause, r.srv.log.String())
		}
		return fmt.Sprintf("every client is back, but hops reports %d clients and %d proxies, want %d and %d", si.ClientsConnected, si.Proxies, n, 2*n)
	}); err != nil {
		return nil, err
	}
	rr.back = time.Since(t1)
	for _, c := range r.clients {
		rr.attempts += c.Stats().Reconnects
	}
	rr.attempts -= attempts0
	var err error
	if rr.refused, err = r.refused(); err != nil {
		return nil, err
	}
	rr.refused = diffCounts(nil, rr.refused)
	st, err := settle(ctx, []*proc{r.srv})
	if err != nil {
		return nil, err
	}
	rr.rssKB, rr.fds = st[0].rss, st[0].fds
	return rr, nil
}

// readLimits fills in the descriptor limits of both processes, this
// process's open files and the ephemeral port range.
func (r *scaleRun) readLimits(l sessionLimits) (sessionLimits, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return l, err
	}
	l.benchSoft, l.benchHard = rl.Cur, rl.Max
	var err error
	if l.hopsSoft, l.hopsHard, err = maxOpenFiles(r.srv.cmd.Process.Pid); err != nil {
		return l, err
	}
	if l.benchFds, err = fds(os.Getpid()); err != nil {
		return l, err
	}
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return l, err
	}
	l.portRange = strings.Join(strings.Fields(string(b)), "–")
	return l, nil
}

// maxOpenFiles reads the "Max open files" line of /proc/PID/limits.
func maxOpenFiles(pid int) (soft, hard string, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return "", "", err
	}
	return parseMaxOpenFiles(string(b))
}

func parseMaxOpenFiles(limits string) (soft, hard string, err error) {
	for line := range strings.Lines(limits) {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) < 2 {
				break
			}
			return f[0], f[1], nil
		}
	}
	return "", "", errors.New("/proc/PID/limits: no \"Max open files\" line")
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
