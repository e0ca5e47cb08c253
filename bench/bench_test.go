package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/vhost"
)

// TestMeasurements runs each measurement against the in-process services,
// without any proxy, for a very short time. It checks that the harness
// produces sane numbers, never how fast anything is.
func TestMeasurements(t *testing.T) {
	ctx := context.Background()
	sink, err := newSink()
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	echo, err := newEcho()
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()

	for _, streams := range []int{1, 3} {
		cpuCalls := 0
		r, err := throughput(ctx, sink.Addr(), sink, streams, 10*time.Millisecond, 50*time.Millisecond, func() float64 { cpuCalls++; return float64(cpuCalls) })
		if err != nil {
			t.Fatalf("throughput, %d streams: %v", streams, err)
		}
		if r.bytes <= 0 || r.elapsed < 50*time.Millisecond || !(r.gbps() > 0) || r.cpu != 1 {
			t.Errorf("throughput, %d streams: %+v, %v Gbit/s", streams, r, r.gbps())
		}
		if n := sink.active.Load(); n != 0 {
			t.Errorf("throughput, %d streams: %d sink connections left open", streams, n)
		}
	}

	ds, err := rtt(ctx, echo.Addr(), 300, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	p50, p99, p999 := percentile(ds, 50), percentile(ds, 99), percentile(ds, 99.9)
	if len(ds) != 300 || ds[0] <= 0 || !(p50 <= p99 && p99 <= p999 && p999 <= ds[len(ds)-1]) {
		t.Errorf("rtt: %d samples, min %v, p50 %v, p99 %v, p99.9 %v", len(ds), ds[0], p50, p99, p999)
	}

	c, err := connRate(ctx, echo.Addr(), 2, 50*time.Millisecond, 500)
	if err != nil {
		t.Fatal(err)
	}
	if c.n <= 0 || c.failed != 0 || !(c.rate() > 0) {
		t.Errorf("connRate: %+v", c)
	}
	if c, _ := connRate(ctx, echo.Addr(), 2, 10*time.Second, 20); c.n > 20 {
		t.Errorf("connRate made %d connections, more than its limit of 20", c.n)
	}

	conns, err := openIdle(ctx, echo.Addr(), 20)
	if err != nil {
		t.Fatal(err)
	}
	if len(conns) != 20 {
		t.Errorf("openIdle: %d connections, want 20", len(conns))
	}
	closeAll(conns)
	if err := echo.waitIdle(ctx, 5*time.Second); err != nil {
		t.Error(err)
	}
}

func TestProcReadings(t *testing.T) {
	rss, hwm, err := memKB(os.Getpid())
	if err != nil || rss <= 0 || hwm < rss {
		t.Errorf("memKB: rss %d, hwm %d, %v", rss, hwm, err)
	}
	if _, err := cpuSeconds(os.Getpid()); err != nil {
		t.Error(err)
	}
}

func TestStats(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median odd = %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median even = %v", m)
	}
	var ds []time.Duration
	for i := 1; i <= 1000; i++ {
		ds = append(ds, time.Duration(i))
	}
	for p, want := range map[float64]time.Duration{50: 500, 99: 990, 99.9: 999, 100: 1000} {
		if got := percentile(ds, p); got != want {
			t.Errorf("percentile %v = %v, want %v", p, got, want)
		}
	}
	if r := ratios([]float64{2, 3}, []float64{4, 6}); r[0] != 0.5 || r[1] != 0.5 {
		t.Errorf("ratios = %v", r)
	}
	if got := cell([]float64{2, 1, 3}, num); got != "2.00 (1.00–3.00)" {
		t.Errorf("cell = %q", got)
	}
	if got := num(math.NaN()); got != "n/a" {
		t.Errorf("num(NaN) = %q", got)
	}
}

func TestReport(t *testing.T) {
	r := newResults([]string{"direct", "hop"})
	r.add("direct", "tput1", 10)
	r.add("hop", "tput1", 5)
	r.add("hop", "rss_srv_idle", 12)
	r.add("direct", "http8", 20000)
	r.add("hop", "http8", 5000)
	p2p := "goos: linux\nBenchmarkP2P/throughput/direct-2   \t 145\t 18472552 ns/op\t  56.76 MB/s\nok\n"
	md := report(meta{command: shellJoin([]string{"go", "run", "./bench", "-quick", "-note", "busy machine"}), idle: 100, p2p: p2p, note: "busy machine"}, r, "")
	for _, want := range []string{"go run ./bench -quick -note 'busy machine'", "- note: busy machine\n",
		"| HTTP requests/s, keep-alive, 1 KiB, 8 workers (higher is better) | 20000 | 5000 | 0.25 |", "| Throughput, 1 stream, Gbit/s (higher is better) | 10.0 | 5.00 | 0.50 |", "100 idle connections open",
		"go test -run '^$' -bench P2P -benchtime 2s ./tests/e2e", "BenchmarkP2P/throughput/direct-2 145 18472552 ns/op 56.76 MB/s"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

func TestFlags(t *testing.T) {
	o, err := parseFlags([]string{"-quick", "-runs", "2"}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if o.runs != 2 || o.dur != time.Second || o.rtts != 2000 || o.httpReqs != 2000 || o.idle != 100 {
		t.Errorf("-quick -runs 2: %+v", o)
	}
	for _, args := range [][]string{{"-hops", "x"}, {"-other-server", "x"}, {"-runs", "0"}, {"-http-reqs", "0"}, {"-max-reqs", "-1"}, {"-other-server", "a", "-other-client", "b", "-other-kind", "rathole"}} {
		if _, err := parseFlags(args, &strings.Builder{}); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

// TestHTTPMeasurements runs the HTTP phases for a very short time against
// the backend directly and through hop's vhost router in process, and
// checks that a wrong Host (404) or a dead backend fails them.
func TestHTTPMeasurements(t *testing.T) {
	ctx := context.Background()
	web, err := newHTTPBackend()
	if err != nil {
		t.Fatal(err)
	}
	defer web.Close()

	// hops' vhost HTTP server, routing benchHost to the backend.
	vs := vhost.NewHTTP(vhost.HTTPConfig{})
	defer vs.Close()
	var d net.Dialer
	if _, err := vs.Add(vhost.Rule{Domains: []string{benchHost}}, &vhost.HTTPRoute{
		Name: "web",
		Dial: func(ctx context.Context, _ string) (net.Conn, error) { return d.DialContext(ctx, "tcp", web.Addr()) },
	}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	vs.Serve(ln)

	for _, tc := range []struct{ name, addr string }{{"direct", web.Addr()}, {"vhost", ln.Addr().String()}} {
		for _, workers := range []int{1, 3} {
			cl := newHTTPClient(tc.addr, benchHost, web.body, workers)
			cpuCalls := 0
			r, err := httpRate(ctx, cl, workers, 10*time.Millisecond, 50*time.Millisecond, 1e6, func() float64 { cpuCalls++; return float64(cpuCalls) })
			cl.Close()
			if err != nil {
				t.Fatalf("%s, httpRate, %d workers: %v", tc.name, workers, err)
			}
			if r.n <= 0 || r.total < r.n || r.elapsed < 50*time.Millisecond || !(r.rate() > 0) || r.cpu != 1 {
				t.Errorf("%s, httpRate, %d workers: %+v, %v req/s", tc.name, workers, r, r.rate())
			}
			// Keep-alive: one connection per worker for all requests.
			if r.dials != int64(workers) {
				t.Errorf("%s, httpRate, %d workers: %d connections for %d requests", tc.name, workers, r.dials, r.total)
			}
		}

		cl := newHTTPClient(tc.addr, benchHost, web.body, 1)
		ds, err := httpLatency(ctx, cl, 300, 10*time.Second)
		if err != nil {
			t.Fatalf("%s, httpLatency: %v", tc.name, err)
		}
		if len(ds) != 300 || ds[0] <= 0 || percentile(ds, 50) > percentile(ds, 99) || cl.dials.Load() != 1 {
			t.Errorf("%s, httpLatency: %d samples, min %v, p50 %v, p99 %v, %d connections", tc.name, len(ds), ds[0], percentile(ds, 50), percentile(ds, 99), cl.dials.Load())
		}
		cl.Close()

		// A Host no route serves: 404 from the vhost, or from the backend.
		cl = newHTTPClient(tc.addr, "other.hop.test", web.body, 2)
		if _, err := httpRate(ctx, cl, 2, 10*time.Millisecond, 50*time.Millisecond, 1e6, nil); !errors.Is(err, errHTTPStatus) || !strings.Contains(err.Error(), "404") {
			t.Errorf("%s, httpRate, wrong Host: %v, want a 404 error", tc.name, err)
		}
		if _, err := httpLatency(ctx, cl, 10, 10*time.Second); !errors.Is(err, errHTTPStatus) || !strings.Contains(err.Error(), "404") {
			t.Errorf("%s, httpLatency, wrong Host: %v, want a 404 error", tc.name, err)
		}
		cl.Close()
	}

	// A body other than the backend's fails too.
	cl := newHTTPClient(web.Addr(), benchHost, web.body[:100], 1)
	if _, err := httpLatency(ctx, cl, 10, 10*time.Second); !errors.Is(err, errHTTPStatus) {
		t.Errorf("httpLatency, short expected body: %v, want %v", err, errHTTPStatus)
	}
	cl.Close()

	// More requests than -max-reqs allows during the warm-up.
	cl = newHTTPClient(web.Addr(), benchHost, web.body, 1)
	if r, err := httpRate(ctx, cl, 1, 5*time.Second, time.Second, 20, nil); err == nil || r.total != 20 {
		t.Errorf("httpRate, 20 requests at most: %d done, %v, want an error about -max-reqs", r.total, err)
	}
	cl.Close()

	// The backend gone: the vhost answers 502.
	web.Close()
	cl = newHTTPClient(ln.Addr().String(), benchHost, web.body, 1)
	if _, err := httpLatency(ctx, cl, 10, 10*time.Second); !errors.Is(err, errHTTPStatus) || !strings.Contains(err.Error(), "502") {
		t.Errorf("httpLatency, backend closed: %v, want a 502 error", err)
	}
	cl.Close()
}

// TestConfigs checks that the configs the bench writes for hop are valid
// and give the http proxy its domain on the vhost port.
func TestConfigs(t *testing.T) {
	k := hopKind("hops", "hopc")
	srv, err := config.ParseServer("hops.toml", []byte(k.serverConf(7000, 7080)))
	if err != nil {
		t.Fatal(err)
	}
	if srv.VhostHTTPPort != 7080 || srv.BindPort != 7000 || srv.ProxyBindAddr != "127.0.0.1" {
		t.Errorf("server config: vhostHTTPPort %d, bindPort %d, proxyBindAddr %q", srv.VhostHTTPPort, srv.BindPort, srv.ProxyBindAddr)
	}
	cli, err := config.ParseClient("hopc.toml", []byte(k.clientConf(7000, []fwd{{"echo", 9001, 7001}}, 9002)))
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, p := range cli.Proxies {
		types = append(types, fmt.Sprint(p.Type))
		if fmt.Sprint(p.Type) == "http" && (p.LocalPort != 9002 || !slices.Equal(p.CustomDomains, []string{benchHost})) {
			t.Errorf("http proxy: localPort %d, customDomains %q", p.LocalPort, p.CustomDomains)
		}
	}
	if !slices.Equal(types, []string{"tcp", "http"}) {
		t.Errorf("proxy types %q, want tcp and http", types)
	}
}

// TestStopSignalExit checks that a process killed by stop's SIGINT is a
// clean stop only for a kind whose binaries install no handler (frp), and
// that a process which exits with an error on SIGINT is always reported.
func TestStopSignalExit(t *testing.T) {
	for _, tc := range []struct {
		name         string
		script       string
		diesOnSignal bool
		wantErr      bool
	}{
		{"killed, dies on signal", "echo ready; exec sleep 30", true, false},
		{"killed, handler expected", "echo ready; exec sleep 30", false, true},
		{"exit 3 on SIGINT", "trap 'exit 3' INT; echo ready; while :; do sleep 0.05; done", true, true},
		{"exit 0 on SIGINT", "trap 'exit 0' INT; echo ready; while :; do sleep 0.05; done", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := startProc("sh", "/bin/sh", "-c", tc.script)
			if err != nil {
				t.Fatal(err)
			}
			p.diesOnSignal = tc.diesOnSignal
			// Wait until the shell runs the script, so that the trap is set.
			if err := poll(context.Background(), 10*time.Second, func() bool { return strings.Contains(p.log.String(), "ready") }, func() string { return "no output from sh" }); err != nil {
				p.cmd.Process.Kill()
				t.Fatal(err)
			}
			err = p.stop(10 * time.Second)
			if (err != nil) != tc.wantErr {
				t.Fatalf("stop: %v, want error: %v", err, tc.wantErr)
			}
		})
	}
}
