package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Targets of issue 14 at 10,000 clients.
const (
	targetRSSPerClientKB = 40e3 / 1024 // 40 KB, in KiB
	targetIdleCPUPct     = 5
	targetBack           = 60 * time.Second
	// linearSlack is how much a per-client figure may grow from the
	// smallest count to the largest and still read as linear: the
	// readings' own noise (RSS settles within 1%, CPU in 10 ms ticks,
	// the machine is shared) is about this large.
	linearSlack = 1.5
)

// sessionsSection renders the phase as a Markdown section. command and
// date say which run produced it (a -only-sessions run splices it into an
// existing report).
func sessionsSection(r sessionResult, command, date string) string {
	var b strings.Builder
	b.WriteString(sessionsHeader + "\n\n")
	fmt.Fprintf(&b, "Measured by `%s` (%s, took %s).\n", command, date, r.took.Round(time.Second))
	b.WriteString("N clients log in to one hops from the bench process with pkg/client (what hopc\n" +
		"runs), each from a source address of its own in 127.0.0.0/8 (transport.connectServerLocalIP\n" +
		"= 127.1.0.1, 127.1.0.2, …), as clients on N hosts would. Each client has 2 proxies: a tcp\n" +
		"proxy in one load-balancing group that all clients share (one public port, hops'\n" +
		"round robin over the members) to an echo service of the bench process, and an stcp\n" +
		"proxy. Default heartbeat (10s) and mux keepalive (15s); hops with its defaults on\n" +
		"loopback, limits included (maxHandshakes 128, maxHandshakesPerIP 8), plus its web API\n" +
		fmt.Sprintf("and /metrics. The counts are cumulative on one hops; at most %d logins are in\n", loginsInFlight) +
		"progress at once during a step. " + restartText(r.restart) + "\n\n")

	b.WriteString("### Memory and idle cost\n\n")
	b.WriteString("| clients | proxies in hops | source addresses hops sees | hops VmRSS, MiB | hops VmHWM, MiB | hops RSS per client, KiB | hops open files | hops threads | hops CPU while idle, % of a core | hops writes per client per minute (bytes) | clients' Go heap+stacks per client, KiB | clients' goroutines per client |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	fmt.Fprintf(&b, "| 0 (idle) | %d | – | %s | %s | – | %d | %d | %s | – | – | – |\n", r.idle.proxies, num(mib(r.idle.rssKB)), num(mib(r.idle.hwmKB)), r.idle.fds, r.idle.threads, num(r.idle.cpuPct))
	for _, p := range r.points {
		n := float64(p.n)
		fmt.Fprintf(&b, "| %d | %d | %d | %s | %s | %s | %d | %d | %s | %s (%s) | %s | %s |\n", p.n, p.proxies, p.sources, num(mib(p.rssKB)), num(mib(p.hwmKB)),
			num(rssPerClient(r, p)), p.fds, p.threads, num(p.cpuPct),
			num((p.writesPerMin-r.idle.writesPerMin)/n), num((p.bytesPerMin-r.idle.bytesPerMin)/n),
			num(float64(p.cliHeap-r.idle.cliHeap)/1024/n), num(float64(p.cliGoroutine-r.idle.cliGoroutine)/n))
	}

	b.WriteString("\n### Logins, connections and restarts\n\n")
	b.WriteString("| clients | new logins | logins/s | hops CPU per login, ms | hops refused during the logins | connections/s through the group (failed) | restart: hops stopped after SIGTERM, s | restart: new hops listening, s | restart: all clients back with their proxies, s | hops refused during the restart | connection attempts per client in the restart | new hops VmRSS with all back, MiB |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, p := range r.points {
		fmt.Fprintf(&b, "| %d | %d | %s | %s | %s | %s (%d) |", p.n, p.logins, num(float64(p.logins)/p.loginTime.Seconds()),
			num(1000*p.loginCPU/float64(p.logins)), countsText(p.refused), num(p.conns.rate()), p.conns.failed)
		if rr := p.restart; rr != nil {
			fmt.Fprintf(&b, " %s | %s | %s | %s | %s | %s |\n", num(rr.stop.Seconds()), num(rr.listen.Seconds()), num(rr.back.Seconds()),
				countsText(rr.refused), num(float64(rr.attempts)/float64(p.n)), num(mib(rr.rssKB)))
		} else {
			b.WriteString(" – | – | – | – | – | – |\n")
		}
	}

	if len(r.points) > 0 {
		b.WriteString("\n### Against the targets of issue 14\n\n")
		b.WriteString(targetsText(r))
	}
	b.WriteString("\n### Limits met on the way, and what to set\n\n")
	b.WriteString(limitsText(r))

	b.WriteString("\nHow to read these tables:\n\n" +
		"- **RSS per client** is (VmRSS with N clients − idle VmRSS) / N, read once\n" +
		"  VmRSS has stayed within 1% for a second (at most 10 s). It covers the session,\n" +
		"  its two proxies and hops' share of the group, and includes the garbage the\n" +
		"  logins left that no collection has freed yet, so it is an upper bound; VmHWM is\n" +
		"  the peak of the hops process then running, logins included.\n" +
		"- **Open files** are hops' /proc/PID/fd: one socket per session, one listener for\n" +
		"  the whole group, none for the stcp proxies.\n" +
		"- **CPU while idle** is hops' utime + stime (/proc/PID/stat, 10 ms ticks)\n" +
		"  over " + cpuWindow.String() + " with the sessions idle (heartbeats and mux keepalives only),\n" +
		"  as a percentage of one core; the clients share the same cores.\n" +
		"- **Writes per client per minute** are hops' write syscalls (and the\n" +
		"  bytes they wrote, TLS records included) over the same window, from\n" +
		"  /proc/PID/io syscw and wchar, minus the idle rate, per client.\n" +
		"- **Clients' figures** are the client side (hopc keeps one session per node):\n" +
		"  Go heap and stacks in use after a forced collection in the bench process, and\n" +
		"  goroutines, both minus the figures before the first client, divided by N.\n" +
		"- **Logins/s** is the step's new logins (TCP connect, TLS handshake, the PAKE login\n" +
		"  with its HMAC proofs) over the time from the first client's start to the last\n" +
		fmt.Sprintf("  login, %d in progress at a time; the clients' side of every handshake runs on\n", loginsInFlight) +
		"  the same cores. **hops CPU per login** is hops' CPU over that time / logins. The\n" +
		"  proxies register right after each login; the readings wait until hops has 2N.\n" +
		"- **Refused** counts hops' hop_logins_refused_total by reason over the step (or\n" +
		"  since the new hops' start); too_many_handshakes is hops refusing for overload\n" +
		"  (limits.maxHandshakes / maxHandshakesPerIP), before TLS. \"0\" means none.\n" +
		fmt.Sprintf("- **Connections/s** is %d workers connecting to the group's public port for %v,\n", connWorkers, connWindow) +
		"  each sending 1 byte, reading the echo and closing, with all clients attached.\n" +
		"- **Restart**: hops gets SIGTERM and exits; the same config starts again on the\n" +
		"  same ports at once. Every client notices the loss and reconnects by its own\n" +
		"  backoff (reconnect.minDelay 1 s, ±20% jitter, doubling after a failed attempt).\n" +
		"  \"All back\" runs from the new hops' start until every client has a new session\n" +
		"  and hops reports N clients and 2N proxies. Connection attempts per client counts\n" +
		"  every attempt from the SIGTERM on (1.00: each got in at its first try).\n")
	return b.String()
}

func restartText(mode string) string {
	switch mode {
	case restartAll:
		return "hops is restarted at every count (after the other readings)."
	case restartTop:
		return "hops is restarted at the top count only (after the other readings)."
	}
	return "hops is not restarted."
}

func rssPerClient(r sessionResult, p sessionPoint) float64 {
	return float64(p.rssKB-r.idle.rssKB) / float64(p.n)
}

// countsText writes counts by reason, "0" for none.
func countsText(m map[string]float64) string {
	if len(m) == 0 {
		return "0"
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, fmt.Sprintf("%.0f %s", m[k], k))
	}
	return strings.Join(out, ", ")
}

// targetsText compares the top count with the targets, and the
// per-client figures of the top count with those of the smallest.
func targetsText(r sessionResult) string {
	var b strings.Builder
	top, low := r.points[len(r.points)-1], r.points[0]
	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**not met**"
	}
	fmt.Fprintf(&b, "At %d clients (the targets are for 10,000):\n\n", top.n)
	rpc := rssPerClient(r, top)
	fmt.Fprintf(&b, "- hops RSS per idle client: %s KiB; target under 40 KB (%s KiB): %s.\n", num(rpc), num(targetRSSPerClientKB), met(rpc < targetRSSPerClientKB))
	fmt.Fprintf(&b, "- hops CPU while idle: %s%% of a core; target under %d%%: %s.\n", num(top.cpuPct), targetIdleCPUPct, met(top.cpuPct < targetIdleCPUPct))
	if rr := top.restart; rr != nil {
		over := rr.refused["too_many_handshakes"]
		fmt.Fprintf(&b, "- after a restart, all back in %s s; target within %.0f s: %s. Logins hops refused for overload (too_many_handshakes): %.0f; target none: %s.\n",
			num(rr.back.Seconds()), targetBack.Seconds(), met(rr.back < targetBack), over, met(over == 0))
	} else {
		b.WriteString("- restart: not run at this count (-restart).\n")
	}
	if len(r.points) < 2 {
		return b.String()
	}
	fmt.Fprintf(&b, "- growth from %d to %d clients (%.0f×), per client (a ratio near 1 is linear in the number of clients; above %.1f reads as worse than linear):", low.n, top.n, float64(top.n)/float64(low.n), linearSlack)
	type fig struct {
		name   string
		lo, hi float64
	}
	figs := []fig{
		{"RSS", rssPerClient(r, low), rssPerClient(r, top)},
		{"idle CPU", (low.cpuPct - r.idle.cpuPct) / float64(low.n), (top.cpuPct - r.idle.cpuPct) / float64(top.n)},
		{"hops CPU per login", low.loginCPU / float64(low.logins), top.loginCPU / float64(top.logins)},
		{"login time (1 / logins/s)", low.loginTime.Seconds() / float64(low.logins), top.loginTime.Seconds() / float64(top.logins)},
	}
	if low.restart != nil && top.restart != nil {
		figs = append(figs, fig{"restart time", low.restart.back.Seconds() / float64(low.n), top.restart.back.Seconds() / float64(top.n)})
	}
	var worse []string
	for i, f := range figs {
		sep := ","
		if i == len(figs)-1 {
			sep = "."
		}
		ratio := f.hi / f.lo
		fmt.Fprintf(&b, " %s %s×%s", f.name, num(ratio), sep)
		if f.lo > 0 && ratio > linearSlack {
			worse = append(worse, f.name)
		}
	}
	if len(worse) > 0 {
		fmt.Fprintf(&b, " Worse than linear: %s.\n", strings.Join(worse, ", "))
	} else {
		b.WriteString(" None is worse than linear.\n")
	}
	b.WriteString("  Connections/s is a rate that does not scale with the clients; it should stay flat.\n")
	return b.String()
}

// limitsText says which limits the run met and what a deployment sets.
func limitsText(r sessionResult) string {
	l := r.limits
	top := 0
	if len(r.points) > 0 {
		top = r.points[len(r.points)-1].n
	}
	var b strings.Builder
	b.WriteString(fmt.Sprintf("- **File descriptors.** hops had at most %d files open (%d clients: one socket\n", l.hopsPeakFds, top) +
		"  per session, one listener for the group and its own ~15, read with the sessions\n" +
		fmt.Sprintf("  idle); its RLIMIT_NOFILE in this run was %s soft, %s hard. The bench\n", l.hopsSoft, l.hopsHard) +
		fmt.Sprintf("  process, which holds the client end of every session, had %d open (limit %d soft,\n", l.benchFds, l.benchSoft) +
		fmt.Sprintf("  %d hard); the hard limit is what caps -sessions at this machine, not hops.\n", l.benchHard) +
		"  One listener per proxy would not have fit: 2 per client are 20,000 more\n" +
		"  descriptors at 10,000 clients, so the tcp proxies share one group port and the\n" +
		"  others are stcp.\n")
	b.WriteString(fmt.Sprintf("- **Ephemeral ports on loopback.** The range is %s. Every client connects\n", l.portRange) +
		"  from an address of its own, so it takes one port of its own address's range; all\n" +
		"  from one address (many hopc behind one NAT address, or a test from 127.0.0.1)\n" +
		"  would take one port each from that one range, plus TIME_WAIT entries after\n" +
		"  each restart, and would meet hops' maxHandshakesPerIP (8) in a restart storm.\n")
	b.WriteString("- **What to set.** hops needs about C + L + U + 20 descriptors for C clients, L\n" +
		"  tcp/udp proxies with a port of their own (a load-balancing group counts once) and\n" +
		"  U user connections open at once. Set it with `ulimit -n` in the shell that starts\n" +
		"  hops, or `LimitNOFILE=` in conf/systemd/hops.service (65536 as shipped; hops\n" +
		"  raises its soft limit to the hard one at start and logs it). 10,000 clients with\n" +
		"  one tcp port each and 5,000 open user connections need about 25,000; with 5 ports\n" +
		"  each, about 65,000: raise LimitNOFILE above 65536 then.\n")
	return b.String()
}

const sessionsHeader = "## Scale of one hops (client sessions)"

// oldSessionsHeaders are the headers earlier versions gave the section;
// a splice replaces them too.
var oldSessionsHeaders = []string{"## Idle client sessions (memory per session)"}

// spliceSessions replaces the sessions section of an existing report
// (or inserts it before "## How to read this") and returns the result.
func spliceSessions(doc, section string) (string, error) {
	for _, h := range append([]string{sessionsHeader}, oldSessionsHeaders...) {
		if i := strings.Index(doc, h); i >= 0 {
			rest := doc[i+len(h):]
			end := len(doc)
			if j := strings.Index(rest, "\n## "); j >= 0 {
				end = i + len(h) + j + 1
			}
			return doc[:i] + section + "\n" + doc[end:], nil
		}
	}
	const anchor = "## How to read this"
	i := strings.Index(doc, anchor)
	if i < 0 {
		return "", fmt.Errorf("the report has neither %q nor %q: run the whole bench to make one", sessionsHeader, anchor)
	}
	return doc[:i] + section + "\n" + doc[i:], nil
}
