package e2e

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/hopproxy/hop/pkg/config"
)

// This file runs several hops nodes behind a real HAProxy (the Debian
// package haproxy, TCP mode, with health checks), the setup README's
// "Running several servers" describes. Each node listens on its own
// loopback address, 127.0.0.11, 127.0.0.12, ..., with the same ports, as
// nodes on distinct hosts would. Users reach the proxies through HAProxy;
// hopc attaches to every node directly (serverAddrs), not through it.

// haproxyPath returns the haproxy binary, or skips the test (fails it
// under HOP_REQUIRE_NETLAB=1, as CI sets, whose .ci/run installs it).
func haproxyPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("haproxy")
	if err != nil {
		if os.Getenv("HOP_REQUIRE_NETLAB") == "1" {
			t.Fatal("haproxy not found and HOP_REQUIRE_NETLAB=1: apt-get install haproxy")
		}
		t.Skip("haproxy not found (apt-get install haproxy); set HOP_REQUIRE_NETLAB=1 to make this a failure")
	}
	return p
}

// nodeIP returns the loopback address of node i (0-based): 127.0.0.11,
// 127.0.0.12, ... It skips the test if the address cannot be bound
// (Linux routes all of 127.0.0.0/8 to lo; other systems may not).
func nodeIP(t *testing.T, i int) string {
	t.Helper()
	ip := fmt.Sprintf("127.0.0.%d", 11+i)
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Skipf("loopback address %s not usable (%v): these tests need 127.0.0.0/8 on lo, as Linux has", ip, err)
	}
	l.Close()
	return ip
}

// nodeConfig is serverConfig with bindAddr and proxyBindAddr on ip: the
// config of one node, the same on every node but for its address.
func nodeConfig(ip string, bindPort int, extra string) string {
	return strings.ReplaceAll(serverConfig(bindPort, extra), `= "127.0.0.1"`, fmt.Sprintf("= %q", ip))
}

// serverAddrsConfig is clientConfig attached to every node in ips, all
// on bindPort, with serverAddrs.
func serverAddrsConfig(ips []string, bindPort int, extra string) string {
	addrs := make([]string, len(ips))
	for i, ip := range ips {
		addrs[i] = strconv.Quote(net.JoinHostPort(ip, strconv.Itoa(bindPort)))
	}
	return strings.Replace(clientConfig(bindPort, extra),
		fmt.Sprintf("serverAddr = \"127.0.0.1\"\nserverPort = %d\n", bindPort),
		"serverAddrs = ["+strings.Join(addrs, ", ")+"]\n", 1)
}

// requireServerAddrs skips the test when hopc does not know the key
// serverAddrs yet (hopc verify rejects it as unknown).
func requireServerAddrs(t *testing.T) {
	t.Helper()
	path := writeConfig(t, "hopc", serverAddrsConfig([]string{"127.0.0.11", "127.0.0.12"}, 7000, ""))
	out, code := runBin(t, "hopc", "verify", "-c", path)
	switch {
	case code == 0:
	case strings.Contains(out, "serverAddrs: unknown key"):
		t.Skipf("hopc does not know serverAddrs yet (hopc verify: %s); this test needs the multi-node client", strings.TrimSpace(out))
	default:
		t.Fatalf("hopc verify of a serverAddrs config: exit %d\n%s", code, out)
	}
}

// haproxyRoute is one frontend of the test's HAProxy: it listens on
// 127.0.0.1:Front and forwards to Port on every node.
type haproxyRoute struct {
	Name  string
	Front int
	Port  int
}

// haproxyConfig returns the HAProxy config of the tests: TCP mode, each
// node's bindPort checked every 500 ms (down after 2 failures, up after 1
// success: a dead node is dropped within about 1.5 s), and a connection
// refused by a node (a node up but not yet serving the proxy, e.g. just
// restarted) retried on another (option redispatch 1): the checks and
// retries of conf/haproxy.cfg.
func haproxyConfig(sock string, ips []string, checkPort int, routes []haproxyRoute) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
	stats socket %s mode 600 level admin
	log stdout format raw local0 info

defaults
	mode tcp
	log global
	option tcplog
	timeout connect 1s
	timeout check 1s
	timeout client 1m
	timeout server 1m
	retries 3
	option redispatch 1
`, sock)
	for _, r := range routes {
		fmt.Fprintf(&b, "\nfrontend %s\n\tbind 127.0.0.1:%d\n\tdefault_backend %s_nodes\n\nbackend %s_nodes\n\tbalance roundrobin\n", r.Name, r.Front, r.Name, r.Name)
		fmt.Fprintf(&b, "\tdefault-server check port %d inter 500ms fall 2 rise 1\n", checkPort)
		for i, ip := range ips {
			fmt.Fprintf(&b, "\tserver node%d %s:%d\n", i+1, ip, r.Port)
		}
	}
	return b.String()
}

// haproxy is a real HAProxy process started by a test.
type haproxy struct {
	t    *testing.T
	proc *proc
	sock string // stats socket, admin level
}

// startHAProxy validates its config with haproxy -c, then runs HAProxy in
// the foreground; it is stopped by PID when the test ends.
func startHAProxy(t *testing.T, bin string, ips []string, checkPort int, routes ...haproxyRoute) *haproxy {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	cfg := filepath.Join(dir, "haproxy.cfg")
	writeFile(t, cfg, haproxyConfig(sock, ips, checkPort, routes))
	if out, err := exec.Command(bin, "-c", "-f", cfg).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c -f %s: %v\n%s", cfg, err, out)
	}
	cmd := exec.Command(bin, "-db", "-f", cfg) // -db: stay in the foreground
	p := launch(t, "haproxy", cmd, func(c *exec.Cmd) (func() error, error) {
		if err := c.Start(); err != nil {
			return nil, err
		}
		return c.Wait, nil
	})
	h := &haproxy{t: t, proc: p, sock: sock}
	for _, r := range routes {
		waitListening(t, loop(r.Front), ready)
	}
	return h
}

// haproxyServer is a server (a node) of a backend, from HAProxy's
// "show stat".
type haproxyServer struct {
	Status string // "UP", "DOWN", "UP 1/2" (going down)...
	Cur    int    // connections open through it now (scur)
	Total  int    // connections it was given (stot)
}

// stat asks HAProxy's stats socket for the servers of backend.
func (h *haproxy) stat(backend string) (map[string]haproxyServer, error) {
	c, err := net.DialTimeout("unix", h.sock, time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "show stat\n"); err != nil {
		return nil, err
	}
	r := bufio.NewReader(c)
	head, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	cols := map[string]int{}
	for i, name := range strings.Split(strings.TrimPrefix(strings.TrimSpace(head), "# "), ",") {
		cols[name] = i
	}
	for _, name := range []string{"pxname", "svname", "status", "scur", "stot"} {
		if _, ok := cols[name]; !ok {
			return nil, fmt.Errorf("show stat: no column %s in %q", name, head)
		}
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	rows, err := cr.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("show stat: %w", err)
	}
	out := map[string]haproxyServer{}
	for _, row := range rows {
		if len(row) <= max(cols["stot"], cols["status"]) || row[cols["pxname"]] != backend {
			continue
		}
		name := row[cols["svname"]]
		if name == "BACKEND" || name == "FRONTEND" {
			continue
		}
		cur, _ := strconv.Atoi(row[cols["scur"]])
		total, _ := strconv.Atoi(row[cols["stot"]])
		out[name] = haproxyServer{Status: row[cols["status"]], Cur: cur, Total: total}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("show stat: no servers of backend %s", backend)
	}
	return out, nil
}

// waitStatus polls until server of backend has status (e.g. "UP") and
// returns how long that took.
func (h *haproxy) waitStatus(backend, server, status string, d time.Duration) time.Duration {
	h.t.Helper()
	t0 := time.Now()
	var last haproxyServer
	eventually(h.t, d, fmt.Sprintf("HAProxy to mark %s/%s %s", backend, server, status), func() bool {
		s, err := h.stat(backend)
		last = s[server]
		return err == nil && last.Status == status
	})
	return time.Since(t0)
}

// echoes sends n echoes through addr, one connection each, and returns
// the first error.
func echoes(addr string, n int) error {
	for i := range n {
		if err := tcpEchoOnce(addr, []byte(fmt.Sprintf("echo %d", i))); err != nil {
			return fmt.Errorf("connection %d of %d through %s: %w", i+1, n, addr, err)
		}
	}
	return nil
}

// kill9 ends p with SIGKILL, as a crashed machine would, and waits for it.
func kill9(t *testing.T, p *proc) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}

// One node behind HAProxy, its client attached to it alone: connections
// through HAProxy reach the proxy; kill -9 the node and HAProxy's health
// check marks it down; restart it on the same ports, the client attaches
// again by itself and HAProxy serves through it again.
func TestHAProxyInFront(t *testing.T) {
	bin := haproxyPath(t)
	ip := nodeIP(t, 0)
	bind, remote, front, web := freePort(t), freePort(t), freePort(t), freePort(t)
	nodeCfg := nodeConfig(ip, bind, fmt.Sprintf("[webServer]\nport = %d\n", web))
	node := start(t, "hops", nodeCfg)
	waitListening(t, net.JoinHostPort(ip, strconv.Itoa(bind)), ready)
	cliCfg := strings.Replace(clientConfig(bind, tcpProxy("echo", tcpService(t, echo), remote)), `serverAddr = "127.0.0.1"`, fmt.Sprintf("serverAddr = %q", ip), 1)
	start(t, "hopc", withID(cliCfg, "solo"))
	direct := net.JoinHostPort(ip, strconv.Itoa(remote))
	waitProxy(t, direct, ready)

	h := startHAProxy(t, bin, []string{ip}, bind, haproxyRoute{Name: "echo", Front: front, Port: remote})
	h.waitStatus("echo_nodes", "node1", "UP", ready)
	if err := echoes(loop(front), 20); err != nil {
		t.Fatal(err)
	}
	if s, err := h.stat("echo_nodes"); err != nil || s["node1"].Total < 20 {
		t.Fatalf("HAProxy's node1 was given %d connections (%v), want the 20 echoes at least", s["node1"].Total, err)
	}

	kill9(t, node)
	down := h.waitStatus("echo_nodes", "node1", "DOWN", ready)
	t.Logf("kill -9 of the node: HAProxy marked it DOWN after %v", down.Round(time.Millisecond))
	if err := tcpEchoOnce(loop(front), []byte("nobody")); err == nil {
		t.Fatal("an echo through HAProxy worked with its only node killed")
	}

	t0 := time.Now()
	node = start(t, "hops", nodeCfg)
	var attached time.Duration
	waitAPI(t, ready, "the client to attach to the restarted node", func() error {
		var proxies []struct {
			Name       string `json:"name"`
			RemotePort int    `json:"remotePort"`
		}
		if err := apiGet(fmt.Sprintf("http://%s/api/proxies", loop(web)), "", "", &proxies); err != nil {
			return err
		}
		if len(proxies) != 1 || proxies[0].Name != "echo" || proxies[0].RemotePort != remote {
			return fmt.Errorf("proxies %+v, want echo on %d", proxies, remote)
		}
		attached = time.Since(t0)
		return nil
	})
	up := h.waitStatus("echo_nodes", "node1", "UP", ready)
	waitProxy(t, loop(front), ready)
	served := time.Since(t0)
	if err := echoes(loop(front), 20); err != nil {
		t.Fatal(err)
	}
	t.Logf("restart of the node: client attached after %v, HAProxy UP %v later, served through HAProxy after %v",
		attached.Round(time.Millisecond), up.Round(time.Millisecond), served.Round(time.Millisecond))
	if code := node.interrupt(10 * time.Second); code != 0 {
		t.Fatalf("hops exit code %d after SIGINT", code)
	}
}

// apiProxy and apiClient are the fields of a node's GET /api/proxies and
// GET /api/clients the tests read.
type apiProxy struct {
	Name       string `json:"name"`
	ClientID   string `json:"clientID"`
	RemotePort int    `json:"remotePort"`
}

type apiClient struct {
	ClientID string `json:"clientID"`
	Online   bool   `json:"online"`
}

// nodeProxies returns the remote port of each proxy registered on the
// node whose web API is on port web.
func nodeProxies(web int) (map[string]int, error) {
	var ps []apiProxy
	if err := apiGet(fmt.Sprintf("http://%s/api/proxies", loop(web)), "", "", &ps); err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, p := range ps {
		out[p.Name] = p.RemotePort
	}
	return out, nil
}

// nodeOnline says whether every client in ids is online on the node.
func nodeOnline(web int, ids ...string) error {
	var cs []apiClient
	if err := apiGet(fmt.Sprintf("http://%s/api/clients", loop(web)), "", "", &cs); err != nil {
		return err
	}
	for _, id := range ids {
		found := false
		for _, c := range cs {
			found = found || (c.ClientID == id && c.Online)
		}
		if !found {
			return fmt.Errorf("client %s not online on the node: %+v", id, cs)
		}
	}
	return nil
}

// pollUntil calls check every 20 ms until it returns nil or deadline
// passes, and returns its last error. Unlike eventually it may run off
// the test's goroutine.
func pollUntil(deadline time.Time, check func() error) error {
	for {
		err := check()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Three nodes behind HAProxy and an owner and a visitor hopc attached to
// every node (serverAddrs): every node serves the tcp proxy, a remotePort
// = 0 proxy gets the same port on every node; kill -9 one node: within
// 3 s new connections through HAProxy succeed 20 of 20, a connection open
// through another node keeps working, the stcp and xtcp visitors still
// reach their proxy; restart the node on the same ports: both clients
// attach to it again by themselves and it serves again.
func TestNodeFailover(t *testing.T) {
	bin := haproxyPath(t)
	const n = 3
	ips := make([]string, n)
	for i := range ips {
		ips[i] = nodeIP(t, i)
	}
	requireServerAddrs(t)
	hostPort := func(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }
	bind, remote, front := freePort(t), freePort(t), freePort(t)
	webs, cfgs, nodes := make([]int, n), make([]string, n), make([]*proc, n)
	for i, ip := range ips {
		webs[i] = freePort(t)
		cfgs[i] = nodeConfig(ip, bind, fmt.Sprintf("[webServer]\nport = %d\n", webs[i]))
		nodes[i] = start(t, "hops", cfgs[i])
	}
	for _, ip := range ips {
		waitListening(t, hostPort(ip, bind), ready)
	}

	const secret = "ha-secret-key"
	echoPort := tcpService(t, echo)
	owner := tcpProxy("echo", echoPort, remote) + tcpProxy("auto", echoPort, 0) + stcpOwner(echoPort, udpEcho(t), secret, "") +
		fmt.Sprintf("\n[[proxies]]\nname = \"p2p-echo\"\ntype = \"xtcp\"\nsecretKey = %q\nlocalPort = %d\n", secret, echoPort)
	ownerCli := start(t, "hopc", withID(serverAddrsConfig(ips, bind, owner), "owner"))
	vt, vx := freePort(t), freePort(t)
	visitor := stcpVisitor(vt, freePort(t), secret) +
		fmt.Sprintf("\n[[visitors]]\nname = \"v-xtcp\"\ntype = \"xtcp\"\nserverName = \"p2p-echo\"\nsecretKey = %q\nbindPort = %d\n", secret, vx)
	start(t, "hopc", withID(serverAddrsConfig(ips, bind, visitor), "visitor"))
	for _, ip := range ips {
		waitProxy(t, hostPort(ip, remote), ready)
	}

	// remotePort = 0: every node ends up with the same port.
	var autoPort int
	waitAPI(t, ready, "proxy auto on every node, on one port", func() error {
		ports := make([]int, n)
		for i, web := range webs {
			ps, err := nodeProxies(web)
			if err != nil {
				return err
			}
			ports[i] = ps["auto"]
		}
		for _, p := range ports {
			if p == 0 || p != ports[0] {
				return fmt.Errorf("remote ports of auto per node: %v", ports)
			}
		}
		autoPort = ports[0]
		return nil
	})
	for _, ip := range ips {
		waitProxy(t, hostPort(ip, autoPort), ready)
	}

	h := startHAProxy(t, bin, ips, bind, haproxyRoute{Name: "echo", Front: front, Port: remote})
	for i := range n {
		h.waitStatus("echo_nodes", fmt.Sprintf("node%d", i+1), "UP", ready)
	}
	before, err := h.stat("echo_nodes")
	if err != nil {
		t.Fatal(err)
	}
	if err := echoes(loop(front), 7*n); err != nil {
		t.Fatal(err)
	}
	after, err := h.stat("echo_nodes")
	if err != nil {
		t.Fatal(err)
	}
	for name := range after {
		if after[name].Total <= before[name].Total {
			t.Errorf("HAProxy gave %s no connection of %d round robin: %+v", name, 7*n, after)
		}
	}
	waitProxy(t, loop(vt), ready)
	waitProxy(t, loop(vx), ready)

	// The victim is the node that relays the stcp visitor's connections
	// (its sec-tcp count grows with a new one), so that the visitor must
	// move to another node.
	relayed := func() ([]int64, error) {
		out := make([]int64, n)
		for i, web := range webs {
			var ps []struct {
				Name       string `json:"name"`
				ConnsTotal int64  `json:"connsTotal"`
			}
			if err := apiGet(fmt.Sprintf("http://%s/api/proxies", loop(web)), "", "", &ps); err != nil {
				return nil, err
			}
			for _, p := range ps {
				if p.Name == "sec-tcp" {
					out[i] = p.ConnsTotal
				}
			}
		}
		return out, nil
	}
	victim := -1
	eventually(t, ready, "a node to relay an stcp connection", func() bool {
		before, err := relayed()
		if err != nil || tcpEchoOnce(loop(vt), []byte("which node")) != nil {
			return false
		}
		after, err := relayed()
		if err != nil {
			return false
		}
		victim = -1
		for i := range n {
			if after[i] > before[i] {
				if victim >= 0 {
					return false
				}
				victim = i
			}
		}
		return victim >= 0
	})
	victimName := fmt.Sprintf("node%d", victim+1)

	// A connection open through HAProxy and another node: connections are
	// opened until one goes through another node than the victim.
	var open net.Conn
	carrier := -1
	for attempt := 0; open == nil; attempt++ {
		if attempt == 2*n {
			t.Fatalf("%d connections through HAProxy, none through another node than %s", attempt, victimName)
		}
		before, err := h.stat("echo_nodes")
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("tcp", loop(front))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := echoOn(c, "before"); err != nil {
			t.Fatal(err)
		}
		node := -1
		eventually(t, ready, "HAProxy to show the new connection on one node", func() bool {
			s, err := h.stat("echo_nodes")
			if err != nil {
				return false
			}
			node = -1
			for i := range n {
				name := fmt.Sprintf("node%d", i+1)
				if s[name].Cur > before[name].Cur {
					if node >= 0 {
						return false
					}
					node = i
				}
			}
			return node >= 0
		})
		if node != victim {
			open, carrier = c, node
		}
	}
	t.Logf("stcp relayed by %s, killing it (%s); a connection is open through node%d", victimName, ips[victim], carrier+1)

	kill9(t, nodes[victim])
	t0 := time.Now()
	deadline := t0.Add(3 * time.Second)
	checks := map[string]func() error{
		"20 of 20 new connections through HAProxy": func() error { return echoes(loop(front), 20) },
		"the stcp visitor":                         func() error { return tcpEchoOnce(loop(vt), []byte("stcp after the kill")) },
		"the xtcp visitor":                         func() error { return tcpEchoOnce(loop(vx), []byte("xtcp after the kill")) },
	}
	type result struct {
		what string
		err  error
		took time.Duration
	}
	results := make(chan result, len(checks))
	for what, check := range checks {
		go func() {
			err := pollUntil(deadline, check)
			results <- result{what, err, time.Since(t0)}
		}()
	}
	for range checks {
		r := <-results
		if r.err != nil {
			t.Errorf("%s within 3 s of kill -9 of %s: %v", r.what, victimName, r.err)
		} else {
			t.Logf("kill -9 of %s: %s after %v", victimName, r.what, r.took.Round(time.Millisecond))
		}
	}
	if err := echoOn(open, "after"); err != nil {
		t.Errorf("the connection open through node%d broke when %s was killed: %v", carrier+1, victimName, err)
	}
	down := time.Since(t0) + h.waitStatus("echo_nodes", victimName, "DOWN", ready)
	t.Logf("kill -9 of %s: HAProxy marked it DOWN after %v", victimName, down.Round(time.Millisecond))
	if err := echoes(loop(front), 20); err != nil {
		t.Fatalf("with %s marked DOWN: %v", victimName, err)
	}
	if t.Failed() {
		t.FailNow()
	}

	// Restart the node on the same ports: the clients attach again by
	// themselves, with the same ports, and it serves again. Meanwhile no
	// new connection through HAProxy fails (should HAProxy send one to the
	// node before its clients registered the proxy there, the refused
	// connection is retried on another node: option redispatch).
	stopLoad, loadDone := make(chan struct{}), make(chan error, 1)
	go func() {
		for k := 0; ; k++ {
			select {
			case <-stopLoad:
				loadDone <- nil
				return
			default:
			}
			if err := tcpEchoOnce(loop(front), []byte("during the restart")); err != nil {
				loadDone <- fmt.Errorf("connection %d through HAProxy during the restart of %s: %w", k+1, victimName, err)
				return
			}
		}
	}()
	t1 := time.Now()
	nodes[victim] = start(t, "hops", cfgs[victim])
	waitAPI(t, ready, "owner and visitor to attach to the restarted "+victimName, func() error {
		if err := nodeOnline(webs[victim], "owner", "visitor"); err != nil {
			return err
		}
		ps, err := nodeProxies(webs[victim])
		if err != nil {
			return err
		}
		if ps["echo"] != remote || ps["auto"] != autoPort {
			return fmt.Errorf("proxies on the restarted node %v, want echo on %d and auto on %d (as on the others)", ps, remote, autoPort)
		}
		return nil
	})
	attached := time.Since(t1)
	waitProxy(t, hostPort(ips[victim], remote), ready)
	h.waitStatus("echo_nodes", victimName, "UP", ready)
	s, err := h.stat("echo_nodes")
	if err != nil {
		t.Fatal(err)
	}
	given := s[victimName].Total
	eventually(t, ready, "HAProxy to send connections to the restarted "+victimName, func() bool {
		if echoes(loop(front), n) != nil {
			return false
		}
		s, err := h.stat("echo_nodes")
		return err == nil && s[victimName].Total > given
	})
	served := time.Since(t1)
	close(stopLoad)
	if err := <-loadDone; err != nil {
		t.Error(err)
	}
	t.Logf("restart of %s: both clients attached after %v, served through HAProxy after %v",
		victimName, attached.Round(time.Millisecond), served.Round(time.Millisecond))
	if err := echoOn(open, "at the end"); err != nil {
		t.Errorf("the connection open through node%d: %v", carrier+1, err)
	}
	for _, addr := range []string{loop(vt), loop(vx)} {
		if err := tcpEchoOnce(addr, []byte("visitor at the end")); err != nil {
			t.Errorf("visitor %s at the end: %v", addr, err)
		}
	}
	if code := ownerCli.interrupt(10 * time.Second); code != 0 {
		t.Errorf("hopc (owner, on %d nodes) exit code %d after SIGINT", n, code)
	}
	if code := nodes[victim].interrupt(10 * time.Second); code != 0 {
		t.Errorf("the restarted hops exit code %d after SIGINT", code)
	}
}

// haproxyExample is what TestHAProxyConfExample reads of conf/haproxy.cfg.
type haproxyExample struct {
	first, last int      // the frontend's bind port range
	checkPort   int      // default-server ... port N
	servers     []string // the nodes' addresses
}

// readHAProxyExample reads the bind range, the check port and the
// servers of conf/haproxy.cfg (one frontend, one backend).
func readHAProxyExample(t *testing.T, path string) haproxyExample {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ex haproxyExample
	for i, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		bad := func() { t.Fatalf("%s:%d: cannot read %q", path, i+1, line) }
		switch f[0] {
		case "bind":
			lo, hi, ok := strings.Cut(strings.TrimPrefix(f[1], ":"), "-")
			var err1, err2 error
			ex.first, err1 = strconv.Atoi(lo)
			ex.last, err2 = strconv.Atoi(hi)
			if !ok || err1 != nil || err2 != nil {
				bad()
			}
		case "default-server":
			for j := 1; j+1 < len(f); j++ {
				if f[j] == "port" {
					ex.checkPort, err = strconv.Atoi(f[j+1])
					if err != nil {
						bad()
					}
				}
			}
		case "server":
			if len(f) < 3 {
				bad()
			}
			ex.servers = append(ex.servers, f[2])
		}
	}
	if ex.first == 0 || ex.checkPort == 0 || len(ex.servers) == 0 {
		t.Fatalf("%s: no bind range, check port or servers: %+v", path, ex)
	}
	return ex
}

// conf/haproxy.cfg is a valid HAProxy config that goes with
// conf/hops_ha.toml and conf/hopc_ha.toml: it checks hops' bindPort,
// forwards every port hops_ha.toml allows, and lists the nodes hopc_ha.toml
// attaches to; the tcp proxies of hopc_ha.toml are in the forwarded range.
func TestHAProxyConfExample(t *testing.T) {
	bin := haproxyPath(t)
	const cfgPath, hopsPath, hopcPath = "../../conf/haproxy.cfg", "../../conf/hops_ha.toml", "../../conf/hopc_ha.toml"
	if out, err := exec.Command(bin, "-c", "-f", cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c -f %s: %v\n%s", cfgPath, err, out)
	}
	ex := readHAProxyExample(t, cfgPath)
	t.Setenv("HOP_TOKEN", "token-from-the-environment-0123456789")

	srv, err := config.LoadServer(hopsPath)
	if err != nil {
		t.Fatal(err)
	}
	if w := srv.Warnings(); w != nil {
		t.Errorf("%s: warnings %q", hopsPath, w)
	}
	if srv.BindPort != ex.checkPort {
		t.Errorf("haproxy.cfg checks port %d, hops_ha.toml's bindPort is %d", ex.checkPort, srv.BindPort)
	}
	if len(srv.AllowPorts) == 0 {
		t.Errorf("hops_ha.toml has no allowPorts: a remotePort = 0 proxy could get a port haproxy.cfg does not forward")
	}
	for _, r := range srv.AllowPorts {
		if r.Start < ex.first || r.End > ex.last {
			t.Errorf("hops_ha.toml allows %d-%d, haproxy.cfg forwards %d-%d only", r.Start, r.End, ex.first, ex.last)
		}
	}

	// hopc_ha.toml, read without pkg/config so that this part runs before
	// hopc knows serverAddrs; hopc verify checks it fully below.
	data, err := os.ReadFile(hopcPath)
	if err != nil {
		t.Fatal(err)
	}
	var cli struct {
		ServerAddrs []string `toml:"serverAddrs"`
		Proxies     []struct {
			Name       string `toml:"name"`
			Type       string `toml:"type"`
			RemotePort int    `toml:"remotePort"`
		} `toml:"proxies"`
	}
	if err := toml.Unmarshal(data, &cli); err != nil {
		t.Fatalf("%s: %v", hopcPath, err)
	}
	var want []string
	for _, s := range ex.servers {
		want = append(want, net.JoinHostPort(s, strconv.Itoa(srv.BindPort)))
	}
	if !slices.Equal(cli.ServerAddrs, want) {
		t.Errorf("hopc_ha.toml serverAddrs = %q, haproxy.cfg's servers on hops_ha.toml's bindPort are %q", cli.ServerAddrs, want)
	}
	if len(cli.Proxies) == 0 {
		t.Errorf("hopc_ha.toml has no proxies")
	}
	for _, p := range cli.Proxies {
		if p.Type != "tcp" {
			t.Errorf("hopc_ha.toml proxy %s is %s: HAProxy forwards TCP only", p.Name, p.Type)
		}
		if p.RemotePort != 0 && (!srv.PortAllowed(p.RemotePort) || p.RemotePort < ex.first || p.RemotePort > ex.last) {
			t.Errorf("hopc_ha.toml proxy %s: remotePort %d not allowed by hops_ha.toml or not forwarded by haproxy.cfg (%d-%d)", p.Name, p.RemotePort, ex.first, ex.last)
		}
	}

	t.Run("hopc verify", func(t *testing.T) {
		requireServerAddrs(t)
		if out, code := runBin(t, "hopc", "verify", "-c", hopcPath); code != 0 || strings.Contains(out, "warning") {
			t.Fatalf("hopc verify -c %s: exit %d\n%s", hopcPath, code, out)
		}
	})
}
