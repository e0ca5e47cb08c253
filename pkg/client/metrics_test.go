package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/client"
	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/server"
	"github.com/hopproxy/hop/tests/faultrelay"
)

// scrape fetches a /metrics page.
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return string(b)
}

// sample is the value of the series written exactly as series (name and
// labels in the exposition's order), or -1 when the page lacks it.
func sample(page, series string) float64 {
	for _, line := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// hopcMetrics serves c's MetricsHandler on a loopback test server.
func hopcMetrics(t *testing.T, c *client.Client) string {
	t.Helper()
	h := c.MetricsHandler()
	if h == nil {
		t.Fatal("MetricsHandler is nil with enablePrometheus")
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + "/metrics"
}

// metricsServer is a server config with the web API and /metrics on.
func metricsServer(t *testing.T, port int) (*config.ServerConfig, string) {
	cfg := serverConfig(port)
	cfg.NodeName = "n1" // every series of hops has node="n1"
	cfg.EnablePrometheus = true
	cfg.WebServer.Port = freePort(t)
	return cfg, "http://" + addr(cfg.WebServer.Port) + "/metrics"
}

// Bytes through a tcp and a udp proxy show on both sides' metrics, as do
// connections, sessions and their losses.
func TestMetricsFollowTraffic(t *testing.T) {
	port, remote, uremote := freePort(t), freePort(t), freePort(t)
	var slog, clog logBuf
	scfg, hopsURL := metricsServer(t, port)
	srv, stopSrv := startServer(t, scfg, slog.logger())
	up := config.DefaultProxy(config.ProxyUDP)
	up.Name, up.LocalPort, up.RemotePort = "dns", udpEchoService(t), uremote
	ccfg := clientConfig(port, tcpProxy("echo", echoService(t), remote), up)
	ccfg.EnablePrometheus = true
	ccfg.WebServer.Port = freePort(t) // required with enablePrometheus; the test serves MetricsHandler itself
	ccfg.Heartbeat.Interval = config.Dur(100 * time.Millisecond)
	c, stopCli := runClient(t, ccfg, clog.logger())
	hopcURL := hopcMetrics(t, c)
	nodeLabel := `node="` + addr(port) + `"` // hopc's session series are per hops node
	eventually(t, 10*time.Second, "echo through the proxy", func() bool { return echoWorks(addr(remote)) })
	// The base is read once the probes' connections have ended on hops,
	// so that none of their bytes is still being counted (CI once read
	// it a moment early and then waited for a sum it could never reach).
	var before []server.ProxyStat
	eventually(t, 10*time.Second, "the probe connections to end on hops", func() bool {
		before = srv.ProxyStats()
		for _, p := range before {
			if p.Name == "echo" {
				return p.ConnsOpen == 0 && p.ConnsTotal > 0
			}
		}
		return false
	})

	const n = 1 << 20
	conn, err := net.Dial("tcp", addr(remote))
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("m"), n)
	go conn.Write(payload)
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(conn, make([]byte, n)); err != nil {
		t.Fatalf("echo of %d bytes: %v", n, err)
	}
	var base [2]float64
	for _, p := range before {
		if p.Name == "echo" {
			base = [2]float64{float64(p.BytesIn), float64(p.BytesOut)}
		}
	}
	// A counter is added to right after its write returns, so the echo
	// can be read here a moment before hops counted its last bytes.
	eventually(t, 10*time.Second, "hops' counters of the echo", func() bool {
		page := scrape(t, hopsURL)
		return sample(page, `hop_proxy_received_bytes_total{node="n1",proxy="echo",type="tcp"}`) == base[0]+n &&
			sample(page, `hop_proxy_sent_bytes_total{node="n1",proxy="echo",type="tcp"}`) == base[1]+n
	})
	page := scrape(t, hopsURL)
	for series, want := range map[string]float64{
		`hop_proxy_received_bytes_total{node="n1",proxy="echo",type="tcp"}`: base[0] + n,
		`hop_proxy_sent_bytes_total{node="n1",proxy="echo",type="tcp"}`:     base[1] + n,
		`hop_proxy_connections_open{node="n1",proxy="echo",type="tcp"}`:     1,
		`hop_clients_connected{node="n1"}`:                                  1,
		`hop_proxies{node="n1",state="online",type="tcp"}`:                  1,
		`hop_proxies{node="n1",state="online",type="udp"}`:                  1,
	} {
		if got := sample(page, series); got != want {
			t.Errorf("hops %s = %v, want %v", series, got, want)
		}
	}
	eventually(t, 10*time.Second, "hopc's counters of the echo", func() bool {
		page := scrape(t, hopcURL)
		return sample(page, `hop_client_proxy_received_bytes_total{proxy="echo",type="tcp"}`) == base[0]+n &&
			sample(page, `hop_client_proxy_sent_bytes_total{proxy="echo",type="tcp"}`) == base[1]+n
	})
	page = scrape(t, hopcURL)
	for series, want := range map[string]float64{
		`hop_client_proxies{state="running",type="tcp"}`: 1,
		`hop_client_proxies{state="running",type="udp"}`: 1,
		`hop_client_proxies{state="failed",type="tcp"}`:  0,
		`hop_client_proxies{state="pending",type="udp"}`: 0,
	} {
		if got := sample(page, series); got != want {
			t.Errorf("hopc %s = %v, want %v", series, got, want)
		}
	}
	conn.Close()
	eventually(t, 10*time.Second, "the connection to close on both sides", func() bool {
		return sample(scrape(t, hopsURL), `hop_proxy_connections_open{node="n1",proxy="echo",type="tcp"}`) == 0 &&
			sample(scrape(t, hopcURL), `hop_client_proxy_connections_open{proxy="echo",type="tcp"}`) == 0
	})
	st := srv.ProxyStats()
	if len(st) != 2 || st[1].Name != "echo" || st[1].RemotePort != remote || st[1].ClientID != c.ID() || st[1].ConnsTotal < 2 ||
		st[1].BytesIn != int64(base[0])+n {
		t.Errorf("ProxyStats = %+v", st)
	}

	// Three datagrams of 5 bytes each way through the udp proxy.
	uc, err := net.Dial("udp", addr(uremote))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	for i := 0; i < 3; {
		uc.Write([]byte("dgram"))
		uc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := uc.Read(make([]byte, 16)); err == nil {
			i++
		}
	}
	eventually(t, 10*time.Second, "udp bytes on both sides", func() bool {
		h, c := scrape(t, hopsURL), scrape(t, hopcURL)
		// A datagram sent before the flow was up may be lost: at least 15.
		return sample(h, `hop_proxy_received_bytes_total{node="n1",proxy="dns",type="udp"}`) >= 15 &&
			sample(h, `hop_proxy_sent_bytes_total{node="n1",proxy="dns",type="udp"}`) == 15 &&
			sample(h, `hop_proxy_connections_total{node="n1",proxy="dns",type="udp"}`) == 1 &&
			sample(c, `hop_client_proxy_sent_bytes_total{proxy="dns",type="udp"}`) == 15 &&
			sample(c, `hop_client_proxy_connections_total{proxy="dns",type="udp"}`) == 1
	})
	eventually(t, 10*time.Second, "heartbeat round trips on both sides", func() bool {
		return sample(scrape(t, hopsURL), `hop_client_heartbeat_rtt_seconds{client="`+c.ID()+`",node="n1"}`) > 0 &&
			sample(scrape(t, hopcURL), `hop_client_heartbeat_rtt_seconds{`+nodeLabel+`}`) > 0
	})
	cpage := scrape(t, hopcURL)
	if sample(cpage, "hop_client_session_up{"+nodeLabel+"}") != 1 || sample(cpage, "hop_client_sessions_total{"+nodeLabel+"}") != 1 {
		t.Errorf("hopc session series:\n%s", cpage)
	}

	// hopc stops: hops counts a session the client closed, hopc one it
	// shut down, and the client's series leave hops' page.
	if err := stopCli(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "hops to count the loss", func() bool {
		return sample(scrape(t, hopsURL), `hop_session_losses_total{cause="client_closed",node="n1"}`) == 1
	})
	page = scrape(t, hopsURL)
	if sample(page, `hop_clients_connected{node="n1"}`) != 0 || strings.Contains(page, `proxy="echo"`) || strings.Contains(page, c.ID()) {
		t.Errorf("series of a gone client remain:\n%s", page)
	}
	// Its proxies are offline now, no longer online.
	for series, want := range map[string]float64{
		`hop_proxies{node="n1",state="offline",type="tcp"}`: 1,
		`hop_proxies{node="n1",state="offline",type="udp"}`: 1,
		`hop_proxies{node="n1",state="online",type="tcp"}`:  -1,
	} {
		if got := sample(page, series); got != want {
			t.Errorf("hops after the client left: %s = %v, want %v\n%s", series, got, want, page)
		}
	}
	cpage = scrape(t, hopcURL)
	if sample(cpage, `hop_client_session_losses_total{cause="client_shutdown",`+nodeLabel+`}`) != 1 || sample(cpage, "hop_client_session_up{"+nodeLabel+"}") != 0 {
		t.Errorf("hopc after shutdown:\n%s", cpage)
	}
	stopSrv()
}

// promtool accepts a real scrape of hops and of two hopc (an owner of
// tcp, udp, xtcp and stcp proxies, and a visitor of them) that carried
// traffic, and every series is on the pages.
func TestMetricsPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("HOP_REQUIRE_NETLAB") == "1" {
			t.Fatal("promtool not found and HOP_REQUIRE_NETLAB=1: install prometheus (it has promtool)")
		}
		t.Skip("promtool not found (apt-get install prometheus); set HOP_REQUIRE_NETLAB=1 to make this a failure")
	}
	defer client.LoopbackOnlyCandidates()()
	port := freePort(t)
	var srvLog, ownerLog, visLog logBuf
	scfg, hopsURL := metricsServer(t, port)
	srv, _ := startServer(t, scfg, srvLog.logger())
	const secret = "metrics-s3cret"
	px := config.DefaultProxy(config.ProxyXTCP)
	px.Name, px.LocalPort, px.SecretKey = "ssh", echoService(t), secret
	ps := config.DefaultProxy(config.ProxySTCP)
	ps.Name, ps.LocalPort, ps.SecretKey = "db", echoService(t), secret
	pu := config.DefaultProxy(config.ProxyXUDP)
	pu.Name, pu.LocalPort, pu.SecretKey = "game", udpEchoService(t), secret
	remote := freePort(t)
	ocfg := clientConfig(port, px, ps, pu, tcpProxy("web", echoService(t), remote))
	ocfg.ClientID, ocfg.EnablePrometheus, ocfg.WebServer.Port = "owner", true, freePort(t)
	ocfg.Heartbeat.Interval = config.Dur(100 * time.Millisecond)
	owner, _ := runClient(t, ocfg, ownerLog.logger())
	eventually(t, 10*time.Second, "the owner's proxies", func() bool { return echoWorks(addr(remote)) })
	vx := config.DefaultVisitor(config.ProxyXTCP)
	vx.Name, vx.ServerName, vx.SecretKey, vx.BindPort = "vssh", "ssh", secret, freePort(t)
	vs := config.DefaultVisitor(config.ProxySTCP)
	vs.Name, vs.ServerName, vs.SecretKey, vs.BindPort = "vdb", "db", secret, freePort(t)
	vcfg := clientConfig(port)
	vcfg.ClientID, vcfg.EnablePrometheus, vcfg.WebServer.Port = "laptop", true, freePort(t)
	vcfg.Heartbeat.Interval = config.Dur(100 * time.Millisecond)
	vu := config.DefaultVisitor(config.ProxyXUDP)
	vu.Name, vu.ServerName, vu.SecretKey, vu.BindPort = "vgame", "game", secret, freePort(t)
	vcfg.Visitors = []config.VisitorConfig{vx, vs, vu}
	vis, _ := runClient(t, vcfg, visLog.logger())
	visURL, ownerURL := hopcMetrics(t, vis), hopcMetrics(t, owner)
	defer func() {
		if t.Failed() {
			t.Logf("visitor:\n%s\nowner:\n%s\nserver:\n%s", visLog.String(), ownerLog.String(), srvLog.String())
		}
	}()
	eventually(t, 30*time.Second, "an stcp echo", func() bool { return echoWorks(addr(vs.BindPort)) })
	eventually(t, 30*time.Second, "the xtcp direct path", func() bool {
		echoWorks(addr(vx.BindPort))
		return sample(scrape(t, visURL), `hop_visitor_path{path="direct_udp",visitor="vssh"}`) == 1 ||
			sample(scrape(t, visURL), `hop_visitor_path{path="direct_tcp",visitor="vssh"}`) == 1
	})
	eventually(t, 30*time.Second, "hops to count the P2P attempt", func() bool {
		return strings.Contains(scrape(t, hopsURL), "hop_p2p_outcomes_total{")
	})
	// hops' API: the visitor's NAT class (from its P2P messages) in its
	// client entry, and the attempt in the tally under that class; hopc
	// counts the attempt under the same pair of classes.
	var class string
	for _, cl := range srv.Clients() {
		if cl.ClientID == "laptop" {
			class = cl.NATClass
		}
	}
	if class == "" || class == "unknown" {
		t.Errorf("hops' view of the visitor has NAT class %q, want the class it reported: %+v", class, srv.Clients())
	}
	resp, err := http.Get("http://" + addr(scfg.WebServer.Port) + "/api/p2p")
	if err != nil {
		t.Fatal(err)
	}
	var tally []server.PairStats
	err = json.NewDecoder(resp.Body).Decode(&tally)
	resp.Body.Close()
	if err != nil || len(tally) == 0 || tally[0].VisitorNAT != class || tally[0].Attempts < 1 || tally[0].LAN+tally[0].Direct+tally[0].Relay != tally[0].Attempts {
		t.Errorf("GET /api/p2p: %+v (%v); want the attempt under visitor class %q", tally, err, class)
	}
	if len(tally) > 0 {
		eventually(t, 10*time.Second, "hopc's count by NAT classes", func() bool {
			page := scrape(t, visURL)
			n := 0.0
			for _, o := range []string{"direct", "lan", "relay"} {
				n += max(0, sample(page, `hop_client_p2p_nat_outcomes_total{outcome="`+o+`",owner_nat="`+tally[0].OwnerNAT+`",visitor_nat="`+class+`"}`))
			}
			return n >= 1
		})
	}
	eventually(t, 10*time.Second, "heartbeat round trips", func() bool {
		return strings.Contains(scrape(t, hopsURL), `hop_client_heartbeat_rtt_seconds{client="laptop",node="n1"}`) &&
			strings.Contains(scrape(t, visURL), "hop_client_heartbeat_rtt_seconds{node=")
	})
	// Datagrams of an xudp visitor count on both ends.
	uc, err := net.Dial("udp", addr(vu.BindPort))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	eventually(t, 30*time.Second, "an xudp echo", func() bool {
		uc.Write([]byte("dgram"))
		uc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err := uc.Read(make([]byte, 16))
		return err == nil
	})
	eventually(t, 10*time.Second, "xudp counters", func() bool {
		return sample(scrape(t, ownerURL), `hop_client_proxy_received_bytes_total{proxy="game",type="xudp"}`) >= 5 &&
			sample(scrape(t, ownerURL), `hop_client_proxy_sent_bytes_total{proxy="game",type="xudp"}`) >= 5 &&
			sample(scrape(t, visURL), `hop_client_visitor_received_bytes_total{type="xudp",visitor="vgame"}`) >= 5 &&
			sample(scrape(t, visURL), `hop_client_visitor_connections_total{type="xudp",visitor="vgame"}`) == 1
	})
	// An stcp visit relayed by hops counts on the secret proxy.
	if v := sample(scrape(t, hopsURL), `hop_proxy_received_bytes_total{node="n1",proxy="db",type="stcp"}`); v <= 0 {
		t.Errorf("relayed stcp bytes on hops = %v, want > 0", v)
	}
	if v := sample(scrape(t, visURL), `hop_client_visitor_sent_bytes_total{type="stcp",visitor="vdb"}`); v <= 0 {
		t.Errorf("stcp visitor bytes on hopc = %v, want > 0", v)
	}

	check := func(name, url string, series []string) {
		page := scrape(t, url)
		for _, s := range series {
			if !strings.Contains(page, "\n"+s) {
				t.Errorf("%s: no series %s on the page:\n%s", name, s, page)
			}
		}
		if os.Getenv("HOP_DUMP_METRICS") != "" {
			t.Logf("%s:\n%s", name, page)
		}
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(page)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool check metrics on %s: %v\n%s", name, err, out)
		}
	}
	for line := range strings.Lines(scrape(t, hopsURL)) { // nodeName on every series of hops
		if !strings.HasPrefix(line, "#") && !strings.Contains(line, `node="n1"`) {
			t.Errorf("hops: a series without node=\"n1\": %s", line)
		}
	}
	check("hops", hopsURL, []string{"hop_clients_connected{", "hop_proxies{", "hop_proxy_connections_open{", "hop_proxy_connections_total{",
		"hop_proxy_received_bytes_total{", "hop_proxy_sent_bytes_total{", "hop_client_heartbeat_rtt_seconds{", "hop_session_losses_total{",
		"hop_logins_refused_total{", "hop_p2p_attempts_total{", "hop_p2p_outcomes_total{", "hop_p2p_time_to_direct_seconds_bucket{"})
	hopc := []string{"hop_client_session_up{", "hop_client_sessions_total{", "hop_client_session_losses_total{", "hop_client_heartbeat_rtt_seconds{"}
	check("hopc owner", ownerURL, append(hopc, "hop_client_proxies{", "hop_client_proxy_connections_open{", "hop_client_proxy_connections_total{",
		"hop_client_proxy_received_bytes_total{", "hop_client_proxy_sent_bytes_total{"))
	check("hopc visitor", visURL, append(hopc, "hop_client_visitor_connections_open{", "hop_client_visitor_connections_total{",
		"hop_client_visitor_received_bytes_total{", "hop_client_visitor_sent_bytes_total{", "hop_visitor_path{",
		"hop_client_p2p_attempts_total{", "hop_client_p2p_outcomes_total{", "hop_client_p2p_time_to_direct_seconds_bucket{", "hop_client_p2p_nat_outcomes_total{"))
}

// A link that goes silent is a heartbeat loss for hopc and, once hopc is
// back, a replaced session for hops; hops shutting down is server_closed
// for hopc.
func TestMetricsSessionLossCauses(t *testing.T) {
	var slog, clog logBuf
	port, remote := freePort(t), freePort(t)
	scfg, hopsURL := metricsServer(t, port)
	_, stopSrv := startServer(t, scfg, slog.logger())
	relay, err := faultrelay.Start("127.0.0.1:0", addr(port))
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	_, rp, _ := net.SplitHostPort(relay.Addr())
	ccfg := clientConfig(0, tcpProxy("echo", echoService(t), remote))
	ccfg.ServerPort, _ = strconv.Atoi(rp)
	ccfg.EnablePrometheus = true
	ccfg.WebServer.Port = freePort(t) // required with enablePrometheus; the test serves MetricsHandler itself
	ccfg.Heartbeat.Interval = config.Dur(100 * time.Millisecond)
	ccfg.Heartbeat.Timeout = config.Dur(500 * time.Millisecond)
	ccfg.Transport.HandshakeTimeout = config.Dur(500 * time.Millisecond)
	c, _ := runClient(t, ccfg, clog.logger())
	hopcURL := hopcMetrics(t, c)
	nl := `node="` + relay.Addr() + `"`
	eventually(t, 5*time.Second, "echo through the proxy", func() bool { return echoWorks(addr(remote)) })

	relay.BlackHole(faultrelay.Both)
	eventually(t, 5*time.Second, "hopc to count a heartbeat loss", func() bool {
		p := scrape(t, hopcURL)
		return sample(p, `hop_client_session_losses_total{cause="heartbeat",`+nl+`}`) == 1 && sample(p, "hop_client_session_up{"+nl+"}") == 0
	})
	relay.Heal()
	eventually(t, 5*time.Second, "echo after the reconnect", func() bool { return echoWorks(addr(remote)) })
	if p := scrape(t, hopsURL); sample(p, `hop_session_losses_total{cause="replaced",node="n1"}`) != 1 || sample(p, `hop_clients_connected{node="n1"}`) != 1 {
		t.Errorf("hops after the reconnect:\n%s", p)
	}
	if p := scrape(t, hopcURL); sample(p, "hop_client_sessions_total{"+nl+"}") != 2 || sample(p, "hop_client_session_up{"+nl+"}") != 1 {
		t.Errorf("hopc after the reconnect:\n%s", p)
	}
	stopSrv()
	eventually(t, 5*time.Second, "hopc to count the server's close", func() bool {
		return sample(scrape(t, hopcURL), `hop_client_session_losses_total{cause="server_closed",`+nl+`}`) == 1
	})
}

// A login that fails counts on hopc by reason: a node where nothing
// listens is "connect", one that refuses the token "auth_failed" (and
// hopc gives up on it).
func TestMetricsLoginFailures(t *testing.T) {
	port, closed := freePort(t), freePort(t)
	runServer(t, serverConfig(port), slog.New(slog.DiscardHandler))
	ccfg := clientConfig(port)
	ccfg.Auth.Token = "not-the-token"
	ccfg.EnablePrometheus, ccfg.WebServer.Port = true, freePort(t)
	c, err := client.New(ccfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	url := hopcMetrics(t, c)
	if err := c.Run(context.Background()); !errors.Is(err, client.ErrPermanent) {
		t.Fatalf("Run with a wrong token: %v, want ErrPermanent", err)
	}
	page := scrape(t, url)
	node := `node="` + addr(port) + `"`
	if got := sample(page, `hop_client_login_failures_total{`+node+`,reason="auth_failed"}`); got != 1 {
		t.Errorf("auth_failed = %v, want 1:\n%s", got, page)
	}
	if got := sample(page, `hop_client_login_failures_total{`+node+`,reason="connect"}`); got != 0 {
		t.Errorf("connect = %v, want 0 (the series exists at zero)", got)
	}

	ncfg := clientConfig(closed)
	ncfg.EnablePrometheus, ncfg.WebServer.Port = true, freePort(t)
	ncfg.Reconnect.MinDelay, ncfg.Reconnect.MaxDelay = config.Dur(10*time.Millisecond), config.Dur(50*time.Millisecond)
	nc, stop := runClient(t, ncfg, slog.New(slog.DiscardHandler))
	nurl := hopcMetrics(t, nc)
	eventually(t, 10*time.Second, "failed connects to count", func() bool {
		return sample(scrape(t, nurl), `hop_client_login_failures_total{node="`+addr(closed)+`",reason="connect"}`) >= 2
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
