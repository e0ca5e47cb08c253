package main

import (
	"context"
	"math"
	"os"
	"strings"
	"testing"
	"time"
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
	p2p := "goos: linux\nBenchmarkP2P/throughput/direct-2   \t 145\t 18472552 ns/op\t  56.76 MB/s\nok\n"
	md := report(meta{command: "go run ./bench -quick", idle: 100, p2p: p2p}, r)
	for _, want := range []string{"go run ./bench -quick", "| Throughput, 1 stream, Gbit/s (higher is better) | 10.0 | 5.00 | 0.50 |", "100 idle connections open",
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
	if o.runs != 2 || o.dur != time.Second || o.rtts != 2000 || o.idle != 100 {
		t.Errorf("-quick -runs 2: %+v", o)
	}
	for _, args := range [][]string{{"-hops", "x"}, {"-other-server", "x"}, {"-runs", "0"}, {"-other-server", "a", "-other-client", "b", "-other-kind", "rathole"}} {
		if _, err := parseFlags(args, &strings.Builder{}); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}
