package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const token = "bench-token"

// build compiles hops and hopc, without -race, into dir. source says
// which commit they were built from, as far as git knows.
func build(ctx context.Context, dir string) (hops, hopc, source string, err error) {
	source = "commit " + gitOut(ctx, "rev-parse", "--short", "HEAD")
	if gitOut(ctx, "status", "--porcelain", "--", "cmd", "pkg", "go.mod", "go.sum") != "" {
		source += " with uncommitted changes in cmd/, pkg/ or go.mod"
	}
	// The release build of the README: static (no libc mapped in) and
	// stripped.
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", dir+string(filepath.Separator),
		"github.com/hopproxy/hop/cmd/hops", "github.com/hopproxy/hop/cmd/hopc")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", "", fmt.Errorf("go build (run bench from the hop module): %v\n%s", err, out)
	}
	return filepath.Join(dir, "hops"), filepath.Join(dir, "hopc"), source, nil
}

// buildRelay compiles the floor's forwarder (bench/relay) into dir.
func buildRelay(ctx context.Context, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator), "github.com/hopproxy/hop/bench/relay")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build bench/relay: %v\n%s", err, out)
	}
	return filepath.Join(dir, "relay"), nil
}

// gitOut runs git in the working directory and returns its trimmed output,
// or "?" if git fails.
func gitOut(ctx context.Context, args ...string) string {
	out, err := exec.CommandContext(ctx, "git", args...).Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

// kind is a proxy under test: its two binaries and how to configure a
// server and a client with tcp proxies on loopback.
type kind struct {
	name                   string // column name: "hop", "frp"
	serverName, clientName string // "hops", "hopc"
	server, client         string // binary paths
	// serverConf configures the server on control port port with its
	// HTTP vhost on vhostPort; clientConf the client with the tcp
	// proxies fwds and an http proxy for Host benchHost to the local
	// port web.
	serverConf func(port, vhostPort int) string
	clientConf func(serverPort int, fwds []fwd, web int) string
	// pairConf, when set, makes both configs at once instead (the relay
	// floor, whose first process must know the second's ports); the
	// server then has no control port to poll, and the HTTP backend is
	// reached through one more forward in fwds, as plain TCP.
	pairConf func(fwds []fwd) (server, client string, err error)
	// diesOnSignal says the binaries install no SIGINT handler, so being
	// killed by the SIGINT stop sends is their normal exit, not a failure.
	diesOnSignal bool
}

// httpProxy is the [[proxies]] entry, in hop's and frp's keys, of an http
// proxy for Host benchHost to the local port web.
func httpProxy(web int) string {
	return fmt.Sprintf("\n[[proxies]]\nname = \"web\"\ntype = \"http\"\nlocalIP = \"127.0.0.1\"\nlocalPort = %d\ncustomDomains = [%q]\n", web, benchHost)
}

// fwd is a tcp proxy: remote port on the server to a local port.
type fwd struct {
	name          string
	local, remote int
}

func hopKind(hops, hopc string) *kind {
	return &kind{
		name: "hop", serverName: "hops", clientName: "hopc", server: hops, client: hopc,
		serverConf: func(port, vhostPort int) string {
			// Defaults otherwise: TLS, mux, heartbeats, keepalives on.
			// stunAltPort = 0 only spares a second UDP port.
			return fmt.Sprintf("bindAddr = \"127.0.0.1\"\nbindPort = %d\nproxyBindAddr = \"127.0.0.1\"\nvhostHTTPPort = %d\nauth.token = %q\np2p.stunAltPort = 0\n", port, vhostPort, token)
		},
		clientConf: func(serverPort int, fwds []fwd, web int) string {
			s := fmt.Sprintf("serverAddr = \"127.0.0.1\"\nserverPort = %d\nauth.token = %q\n", serverPort, token)
			for _, f := range fwds {
				s += fmt.Sprintf("\n[[proxies]]\nname = %q\ntype = \"tcp\"\nlocalIP = \"127.0.0.1\"\nlocalPort = %d\nremotePort = %d\n", f.name, f.local, f.remote)
			}
			return s + httpProxy(web)
		},
	}
}

// frpKind configures frp v0.52 or later (TOML configs): tcp proxies, and
// an http proxy on frps' vhostHTTPPort (the same keys as hop's). Run
// against v0.70.1 built as bench/README.md says. frps installs no signal
// handler, and frpc only with kcp or quic transport (cmd/frpc/sub/root.go,
// handleTermSignal), so both die of the SIGINT that ends a repetition.
func frpKind(frps, frpc string) *kind {
	return &kind{
		name: "frp", serverName: "frps", clientName: "frpc", server: frps, client: frpc,
		diesOnSignal: true,
		serverConf: func(port, vhostPort int) string {
			return fmt.Sprintf("bindAddr = \"127.0.0.1\"\nbindPort = %d\nproxyBindAddr = \"127.0.0.1\"\nvhostHTTPPort = %d\nauth.token = %q\n", port, vhostPort, token)
		},
		clientConf: func(serverPort int, fwds []fwd, web int) string {
			s := fmt.Sprintf("serverAddr = \"127.0.0.1\"\nserverPort = %d\nauth.token = %q\ntransport.tls.enable = true\n", serverPort, token)
			for _, f := range fwds {
				s += fmt.Sprintf("\n[[proxies]]\nname = %q\ntype = \"tcp\"\nlocalIP = \"127.0.0.1\"\nlocalPort = %d\nremotePort = %d\n", f.name, f.local, f.remote)
			}
			return s + httpProxy(web)
		},
	}
}

// relayKind is the floor: two plain TCP forwarders (bench/relay) in a
// chain, no TLS, no mux.
func relayKind(bin string) *kind {
	return &kind{
		name: "relay×2", serverName: "relay1", clientName: "relay2", server: bin, client: bin,
		pairConf: func(fwds []fwd) (string, string, error) {
			mids, err := freePorts(len(fwds))
			if err != nil {
				return "", "", err
			}
			var first, second strings.Builder
			for i, f := range fwds {
				fmt.Fprintf(&first, "127.0.0.1:%d 127.0.0.1:%d\n", f.remote, mids[i])
				fmt.Fprintf(&second, "127.0.0.1:%d 127.0.0.1:%d\n", mids[i], f.local)
			}
			return first.String(), second.String(), nil
		},
	}
}

// target is one column of the table: direct to the services, or through a
// proxy whose processes run while a repetition runs.
type target struct {
	name                         string
	kind                         *kind // nil for direct
	sinkAddr, echoAddr, httpAddr string
	server, client               *proc
}

func (t *target) procs() []*proc { return []*proc{t.server, t.client} }

// start writes configs on free loopback ports, starts the server and the
// client, and polls until the three services answer through the proxy.
func (t *target) start(ctx context.Context, dir string, sink, echo *service, web *httpBackend) error {
	ports, err := freePorts(4)
	if err != nil {
		return err
	}
	sp, sinkPort, echoPort, httpPort := ports[0], ports[1], ports[2], ports[3]
	conf := func(name, s string) (string, error) {
		p := filepath.Join(dir, name+".toml")
		return p, os.WriteFile(p, []byte(s), 0o600)
	}
	fwds := []fwd{
		{"sink", port(sink.Addr()), sinkPort},
		{"echo", port(echo.Addr()), echoPort},
	}
	srvText, cliText := "", ""
	if t.kind.pairConf != nil {
		if srvText, cliText, err = t.kind.pairConf(append(fwds, fwd{"http", port(web.Addr()), httpPort})); err != nil {
			return err
		}
	} else {
		srvText, cliText = t.kind.serverConf(sp, httpPort), t.kind.clientConf(sp, fwds, port(web.Addr()))
	}
	sc, err := conf(t.kind.serverName, srvText)
	if err != nil {
		return err
	}
	cc, err := conf(t.kind.clientName, cliText)
	if err != nil {
		return err
	}
	if t.server, err = startProc(t.kind.serverName, t.kind.server, "-c", sc); err != nil {
		return err
	}
	t.server.diesOnSignal = t.kind.diesOnSignal
	// Start the client once the server listens, so that it does not wait
	// out a reconnect backoff.
	srvAddr := fmt.Sprintf("127.0.0.1:%d", sp)
	if t.kind.pairConf != nil {
		srvAddr = fmt.Sprintf("127.0.0.1:%d", echoPort)
	}
	if err := t.poll(ctx, "the server to accept on "+srvAddr, func() bool {
		c, err := net.DialTimeout("tcp", srvAddr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	}); err != nil {
		return err
	}
	if t.client, err = startProc(t.kind.clientName, t.kind.client, "-c", cc); err != nil {
		return err
	}
	t.client.diesOnSignal = t.kind.diesOnSignal
	t.sinkAddr = fmt.Sprintf("127.0.0.1:%d", sinkPort)
	t.echoAddr = fmt.Sprintf("127.0.0.1:%d", echoPort)
	if err := t.poll(ctx, "an echo through "+t.echoAddr, func() bool { return oneConn(t.echoAddr) == nil }); err != nil {
		return err
	}
	// Until hopc's http proxy is registered, hops answers 404.
	t.httpAddr = fmt.Sprintf("127.0.0.1:%d", httpPort)
	hc := newHTTPClient(t.httpAddr, benchHost, web.body, 1)
	defer hc.Close()
	var buf bytes.Buffer
	var last error
	if err := t.poll(ctx, "an HTTP answer through "+t.httpAddr, func() bool { last = hc.get(ctx, &buf); return last == nil }); err != nil {
		return fmt.Errorf("%w\nlast HTTP error: %v", err, last)
	}
	before := sink.read.Load()
	if err := t.poll(ctx, "a byte through "+t.sinkAddr+" to the sink", func() bool {
		if sink.read.Load() > before {
			return true
		}
		if c, err := net.DialTimeout("tcp", t.sinkAddr, time.Second); err == nil {
			c.Write([]byte{'r'})
			c.Close()
		}
		return false
	}); err != nil {
		return err
	}
	return sink.waitIdle(ctx, 10*time.Second)
}

// poll waits up to 20 s for cond, failing early with the logs if a process
// of t has exited.
func (t *target) poll(ctx context.Context, what string, cond func() bool) error {
	var dead *proc
	err := poll(ctx, 20*time.Second, func() bool {
		for _, p := range t.procs() {
			if p != nil && !p.running() {
				dead = p
				return true
			}
		}
		return cond()
	}, func() string { return "timed out waiting for " + what + t.logs() })
	if dead != nil {
		return fmt.Errorf("%s exited while waiting for %s: %v%s", dead.name, what, dead.err, t.logs())
	}
	return err
}

func (t *target) logs() string {
	var b strings.Builder
	for _, p := range t.procs() {
		if p != nil {
			fmt.Fprintf(&b, "\n--- %s (pid %d) log:\n%s", p.name, p.cmd.Process.Pid, p.log.String())
		}
	}
	return b.String()
}

// stop interrupts the client, then the server, and reports an unclean exit.
func (t *target) stop() error {
	var errs []error
	for _, p := range []*proc{t.client, t.server} {
		if p != nil {
			errs = append(errs, p.stop(10*time.Second))
		}
	}
	t.server, t.client = nil, nil
	return errors.Join(errs...)
}

// cpu returns the CPU seconds used so far by both processes, or NaN if
// they cannot be read.
func (t *target) cpu() float64 {
	var sum float64
	for _, p := range t.procs() {
		s, err := cpuSeconds(p.cmd.Process.Pid)
		if err != nil {
			return math.NaN()
		}
		sum += s
	}
	return sum
}

// procState is what settle reads of one process.
type procState struct {
	rss int64 // KiB
	fds int
}

// settle polls the RSS of the processes every 200 ms until their sum has
// stayed within 1% for a second (or 10 s have passed) and returns it, per
// process, with the number of open file descriptors.
func settle(ctx context.Context, procs []*proc) ([]procState, error) {
	var sums []int64
	deadline := time.Now().Add(10 * time.Second)
	for {
		var last []procState
		var sum int64
		for _, p := range procs {
			rss, _, err := memKB(p.cmd.Process.Pid)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p.name, err)
			}
			n, err := fds(p.cmd.Process.Pid)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p.name, err)
			}
			last = append(last, procState{rss, n})
			sum += rss
		}
		sums = append(sums, sum)
		if n := len(sums); n >= 5 {
			lo, hi := sums[n-5], sums[n-5]
			for _, s := range sums[n-5:] {
				lo, hi = min(lo, s), max(hi, s)
			}
			if float64(hi-lo) <= 0.01*float64(hi) || time.Now().After(deadline) {
				return last, nil
			}
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// freePorts returns n loopback ports, TCP and UDP, that were free a moment
// ago (hops also answers STUN on UDP at its bindPort).
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		u, err := net.ListenPacket("udp", l.Addr().String())
		if err != nil {
			continue
		}
		u.Close()
		ports = append(ports, port(l.Addr().String()))
	}
	return ports, nil
}

func port(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// proc is a server or client process started by the bench.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  tail
	done chan struct{}
	err  error // of Wait, once done is closed
	// diesOnSignal: death by the SIGINT stop sends is a clean exit.
	diesOnSignal bool
}

func startProc(name, bin string, args ...string) (*proc, error) {
	p := &proc{name: name, cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.log, &p.log
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGINT and waits up to d for the process to exit, then kills
// it by its PID. It reports an early, unclean or late exit.
func (p *proc) stop(d time.Duration) error {
	pid := p.cmd.Process.Pid
	if !p.running() {
		return fmt.Errorf("%s (pid %d) had exited before the end: %v\n%s", p.name, pid, p.err, p.log.String())
	}
	p.cmd.Process.Signal(os.Interrupt)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s (pid %d) did not exit within %v of SIGINT; killed", p.name, pid, d)
	}
	if p.err != nil && !(p.diesOnSignal && killedBy(p.err, syscall.SIGINT)) {
		return fmt.Errorf("%s (pid %d) on SIGINT: %v\n%s", p.name, pid, p.err, p.log.String())
	}
	return nil
}

// killedBy reports whether err, of exec.Cmd.Wait, says the process was
// killed by sig.
func killedBy(err error, sig syscall.Signal) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// memKB returns VmRSS and VmHWM (peak RSS) of pid, in KiB.
func memKB(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status: %s: %w", pid, k, err)
		}
		if k == "VmRSS" {
			rss = n
		} else {
			hwm = n
		}
	}
	if rss == 0 || hwm == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status: no VmRSS or VmHWM", pid)
	}
	return rss, hwm, nil
}

// fds returns how many file descriptors pid has open.
func fds(pid int) (int, error) {
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(es), err
}

// clkTck is sysconf(_SC_CLK_TCK), the unit of utime and stime in
// /proc/PID/stat: 100 on Linux on every common architecture.
const clkTck = 100

// cpuSeconds returns utime+stime of pid, from /proc/PID/stat.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces;
	// utime and stime are fields 14 and 15, i.e. 12 and 13 after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return float64(ut+st) / clkTck, nil
}

// tail keeps the last 64 KiB of a process's output, shown when it fails.
type tail struct {
	mu sync.Mutex
	b  []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if n := len(t.b) - 64<<10; n > 0 {
		t.b = append(t.b[:0], t.b[n:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
