package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// results holds every figure per target ("direct", "hop", ...) and metric
// key, one value per repetition, in repetition order.
type results struct {
	targets  []string
	vals     map[string]map[string][]float64
	warnings []string
}

func newResults(targets []string) *results {
	r := &results{targets: targets, vals: make(map[string]map[string][]float64)}
	for _, t := range targets {
		r.vals[t] = make(map[string][]float64)
	}
	return r
}

func (r *results) add(target, key string, v float64) {
	r.vals[target][key] = append(r.vals[target][key], v)
}

func (r *results) warn(format string, args ...any) {
	r.warnings = append(r.warnings, fmt.Sprintf(format, args...))
}

// metric is a row of a table. A row with more keys shows their cells
// separated by " / ".
type metric struct {
	key, label string
	more       []string
	integer    bool // a count, shown without decimals
}

// netMetrics are measured for every target, direct included.
var netMetrics = []metric{
	{key: "tput1", label: "Throughput, 1 stream, Gbit/s (higher is better)"},
	{key: "tput8", label: "Throughput, 8 streams, Gbit/s (higher is better)"},
	{key: "rtt50", label: "RTT 64 B, p50, µs (lower is better)"},
	{key: "rtt99", label: "RTT 64 B, p99, µs (lower is better)"},
	{key: "rtt999", label: "RTT 64 B, p99.9, µs (lower is better)"},
	{key: "conn1", label: "New connections/s, 1 worker (higher is better)"},
	{key: "conn8", label: "New connections/s, 8 workers (higher is better)"},
	{key: "http1", label: "HTTP requests/s, keep-alive, 1 KiB, 1 worker (higher is better)"},
	{key: "http8", label: "HTTP requests/s, keep-alive, 1 KiB, 8 workers (higher is better)"},
	{key: "http50", label: "HTTP latency, keep-alive, 1 KiB, p50, µs (lower is better)"},
	{key: "http99", label: "HTTP latency, keep-alive, 1 KiB, p99, µs (lower is better)"},
}

// procMetrics are measured for the proxies only. {n} is the number of idle
// connections.
var procMetrics = []metric{
	{key: "rss_srv_idle", label: "server RSS, idle after start, MiB"},
	{key: "rss_cli_idle", label: "client RSS, idle after start, MiB"},
	{key: "rss_srv_open", label: "server RSS, {n} idle connections open, MiB"},
	{key: "rss_cli_open", label: "client RSS, {n} idle connections open, MiB"},
	{key: "rss_per_conn", label: "RSS per idle connection, server + client, KiB"},
	{key: "rss_srv_closed", label: "server RSS, after closing them, MiB"},
	{key: "rss_cli_closed", label: "client RSS, after closing them, MiB"},
	{key: "fd_srv_idle", label: "server open files: idle / {n} open / closed", more: []string{"fd_srv_open", "fd_srv_closed"}, integer: true},
	{key: "fd_cli_idle", label: "client open files: idle / {n} open / closed", more: []string{"fd_cli_open", "fd_cli_closed"}, integer: true},
	{key: "rss_srv_peak", label: "server peak RSS (VmHWM) over the repetition, MiB"},
	{key: "rss_cli_peak", label: "client peak RSS (VmHWM) over the repetition, MiB"},
	{key: "cpu1", label: "CPU s per GB, server + client, 1 stream"},
	{key: "cpu8", label: "CPU s per GB, server + client, 8 streams"},
	{key: "cpu_http8", label: "CPU µs per HTTP request, server + client, 8 workers"},
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// The epsilon keeps 99.9% of 1000 at rank 999 despite rounding.
	i := int(math.Ceil(p*float64(len(sorted))/100-1e-9)) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// ratios divides num by den repetition by repetition.
func ratios(num, den []float64) []float64 {
	if len(num) != len(den) {
		return nil
	}
	out := make([]float64, len(num))
	for i := range num {
		out[i] = num[i] / den[i]
	}
	return out
}

// num formats v with about three significant digits.
func num(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "n/a"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// cell is the median of xs, and its range when the repetitions differ.
func cell(xs []float64, format func(float64) string) string {
	if len(xs) == 0 {
		return "–"
	}
	lo, hi := slices.Min(xs), slices.Max(xs)
	m := format(median(xs))
	if lo == hi || format(lo) == format(hi) {
		return m
	}
	return fmt.Sprintf("%s (%s–%s)", m, format(lo), format(hi))
}

func ratio(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", v)
}

// meta describes the run, for the header of the report.
type meta struct {
	p2p                                             string // P2P benchmark output, or ""
	note                                            string // -note, or ""
	command, date, goVersion, binaries, cpu, kernel string
	cores, runs, rtts, httpReqs, idle               int
	dur, warmup, took                               time.Duration
}

// tables renders the two Markdown tables.
func tables(r *results, idle int) string {
	var b strings.Builder
	proxies := r.targets[1:]

	b.WriteString("| figure | direct |")
	for _, p := range proxies {
		fmt.Fprintf(&b, " %s | %s/direct |", p, p)
	}
	b.WriteString("\n|---|---:|")
	b.WriteString(strings.Repeat("---:|---:|", len(proxies)))
	b.WriteString("\n")
	for _, m := range netMetrics {
		direct := r.vals["direct"][m.key]
		fmt.Fprintf(&b, "| %s | %s |", m.label, cell(direct, num))
		for _, p := range proxies {
			v := r.vals[p][m.key]
			fmt.Fprintf(&b, " %s | %s |", cell(v, num), cell(ratios(v, direct), ratio))
		}
		b.WriteString("\n")
	}

	b.WriteString("\n| process figure |")
	for _, p := range proxies {
		fmt.Fprintf(&b, " %s |", p)
	}
	b.WriteString("\n|---|")
	b.WriteString(strings.Repeat("---:|", len(proxies)))
	b.WriteString("\n")
	for _, m := range procMetrics {
		fmt.Fprintf(&b, "| %s |", strings.ReplaceAll(m.label, "{n}", fmt.Sprint(idle)))
		format := num
		if m.integer {
			format = func(v float64) string { return fmt.Sprintf("%.0f", v) }
		}
		for _, p := range proxies {
			var cells []string
			for _, k := range append([]string{m.key}, m.more...) {
				cells = append(cells, cell(r.vals[p][k], format))
			}
			fmt.Fprintf(&b, " %s |", strings.Join(cells, " / "))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// report renders the whole Markdown document: header, tables, warnings,
// how to read them, and what is measured elsewhere.
// sessions is the idle-sessions section, or "" when it was not run.
func report(m meta, r *results, sessions string) string {
	var b strings.Builder
	b.WriteString("# hop benchmarks\n\n")
	b.WriteString("Generated by `go run ./bench` (bench/main.go); do not edit by hand, run it again.\n\n")
	fmt.Fprintf(&b, "```sh\n%s\n```\n\n", m.command)
	fmt.Fprintf(&b, "- date: %s (took %s)\n", m.date, m.took.Round(time.Second))
	fmt.Fprintf(&b, "- %s\n", m.goVersion)
	if m.binaries != "" {
		fmt.Fprintf(&b, "- binaries: %s\n", m.binaries)
	}
	fmt.Fprintf(&b, "- CPU: %s, %d logical cores, shared by the load generator, the services and the proxy processes\n", m.cpu, m.cores)
	fmt.Fprintf(&b, "- kernel: Linux %s; all traffic on 127.0.0.1\n", m.kernel)
	fmt.Fprintf(&b, "- settings: repetitions %d; throughput, connection and HTTP request-rate phases %v each, throughput and HTTP after a %v warm-up; %d round trips; %d HTTP requests timed; %d idle connections\n",
		m.runs, m.dur, m.warmup, m.rtts, m.httpReqs, m.idle)
	if m.note != "" {
		fmt.Fprintf(&b, "- note: %s\n", m.note)
	}
	b.WriteString("\n")
	b.WriteString("## Results\n\n")
	b.WriteString(tables(r, m.idle))
	if len(r.warnings) > 0 {
		b.WriteString("\nWarnings during the run:\n\n")
		for _, w := range r.warnings {
			fmt.Fprintf(&b, "- %s\n", w)
		}
	}
	if sessions != "" {
		b.WriteString("\n" + sessions)
	}
	b.WriteString(howToRead)
	b.WriteString(p2pSection(m.p2p))
	return b.String()
}

const howToRead = `
## How to read this

- **Cells** are the median over the repetitions, with the lowest and highest
  value in parentheses when they differ.
- **Ratios** (hop/direct) are computed within each repetition, where both
  columns were measured one after the other, phase by phase (the order
  alternates between repetitions), so that drift of the machine affects
  both; the cell is the median and range of those per-repetition ratios.
  For throughput, connections/s and HTTP requests/s, 1.00 means as fast as
  direct, lower is worse; for round trips and HTTP latency, 1.00 means as
  quick as direct, higher is worse.
- **direct** is the Go client talking to the in-process services over
  loopback. It is an upper bound, not a goal: through hop every byte
  crosses three loopback TCP connections (client → hops, the TLS + yamux
  session hops → hopc, hopc → service) and is encrypted and decrypted once,
  and both processes share the same two cores with the load generator.
  Figures through a proxy are bounded by CPU, not by the network.
- **relay×2** is the floor of any two-process proxy on this machine: two
  plain Go TCP forwarders in a chain (bench/relay: no TLS, no mux, the
  kernel's splice for the bytes), crossing the same processes and loopback
  hops as hops and hopc. Where hop is close to it, the remaining distance
  to direct is the cost of a second and third process on two shared
  cores (each round trip wakes six processes instead of two), not of hop.
  Read only its network rows: its open-file counts show it keeps some
  connections of earlier phases open, so its memory rows are not
  comparable with hop's.
- **frp**, when its column is there, is frp v0.70.1 built from source,
  static and stripped like hop (git checkout v0.70.1, then
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -tags frps,noweb
  ./cmd/frps, and the same with frpc,noweb for ./cmd/frpc; bench/README.md
  has the steps), with TLS and its tcp mux on, as hop.
- **Throughput**: senders write 128 KiB chunks of random bytes as fast as
  they can into a sink that discards them; the bytes the sink receives are
  counted over the phase's window, after the warm-up (1 Gbit = 10^9 bits).
- **RTT**: one connection, write 64 bytes, wait for the 64-byte echo,
  repeat (Nagle off, Go's default); 100 unmeasured round trips first;
  nearest-rank percentiles.
- **New connections/s**: connect, send 1 byte, read its echo, close,
  repeated by each worker; through hop each one is a TCP accept by hops, a
  new yamux stream, and a TCP connect by hopc to the service.
- **HTTP requests/s**: each worker sends GET requests, one after the
  other, on its own keep-alive HTTP/1.1 connection (Go's net/http client)
  to an in-process net/http backend that answers 1 KiB; requests of the
  warm-up are not counted. Through hop the request goes to hops'
  vhostHTTPPort with the Host of an http proxy (customDomains), which
  hops routes, forwards on its own keep-alive connection over a yamux
  stream to hopc and on to the backend (a reverse proxy: each request is
  parsed and written again, X-Forwarded-* added); frp's column, when
  measured, is its http proxy on its vhostHTTPPort the same way.
  relay×2 forwards the HTTP connection as plain TCP bytes and parses
  nothing, so it is the floor of the processes and loopback hops, not of
  a vhost. Every answer must be 200 with the backend's 1 KiB: a 404 (a
  Host the vhost does not route) or any other failure ends the run with
  an error. A warning says so if the client had to open more connections
  than workers (keep-alive broken).
- **HTTP latency**: the same requests one at a time on one keep-alive
  connection, 100 unmeasured first; nearest-rank percentiles.
- **CPU µs per HTTP request** is utime + stime of both proxy processes
  during the 8-worker window, divided by the requests answered in it.
- **RSS** is VmRSS from /proc/PID/status, read once it has stayed within 1%
  for a second (at most 10 s). The idle connections are opened through the
  proxy to the echo service and each is checked with a 1-byte echo before
  the reading; "per idle connection" is (open − idle) / count for both
  processes together. The proxy processes are started afresh for each
  repetition.
- **After closing** is not a leak check by RSS: a Go process that is idle
  runs no garbage collection (its next one is due when the heap doubles,
  or after 2 minutes), so RSS stays where the open connections left it,
  and a second cycle of opening and closing them grows it further until
  a collection runs. The leak check is the **open files** row, from
  /proc/PID/fd: each proxied connection holds a socket in each process,
  and after closing they must be back at the idle count.
- **Peak RSS** is VmHWM at the end of the repetition, so it covers the
  throughput phases, where buffers are largest.
- **CPU s per GB** is utime + stime of both proxy processes from
  /proc/PID/stat (in clock ticks, assumed to be 100 per second as on every
  common Linux; 10 ms resolution) during the throughput window, divided by
  the GB (10^9 bytes) the sink received in it.
`

// p2pSection renders the P2P figures from the output of the netlab
// benchmark, or says how to get them.
func p2pSection(out string) string {
	var b strings.Builder
	b.WriteString("\n## P2P (xtcp) figures\n\n")
	b.WriteString("xtcp throughput and 64-byte RTT over a direct (punched) path and relayed\n" +
		"through hops (an stcp visitor of the same owner: the path a failed punch\n" +
		"falls back to), and the time from the first application connect to a\n" +
		"direct path, measured in network namespaces with real NATs (root) by:\n\n")
	b.WriteString("```sh\ngo test -run '^$' -bench P2P -benchtime 2s ./tests/e2e > p2p.txt\ngo run ./bench -p2p p2p.txt -out BENCHMARKS.md\n```\n\n")
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "Benchmark") {
			lines = append(lines, strings.Join(strings.Fields(l), " "))
		}
	}
	if len(lines) == 0 {
		b.WriteString("Not included in this run (no -p2p file).\n")
		return b.String()
	}
	b.WriteString("```\n" + strings.Join(lines, "\n") + "\n```\n\n")
	b.WriteString("MB/s is 10^6 bytes per second (×0.008 for Gbit/s); p50-µs and p99-µs are\n" +
		"round-trip percentiles; ms-to-path is from the first connect to the\n" +
		"direct path's establishment.\n")
	return b.String()
}
