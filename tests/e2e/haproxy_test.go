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
	"strconv"
	"strings"
	"testing"
	"time"
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

// haproxyConfig writes the HAProxy config of the tests: TCP mode, each
// node's bindPort checked every 500 ms (down after 2 failures, up after 1
// success: a dead node is dropped within about 1.5 s), and a connection
// refused by a node (a node up but not yet serving the proxy, e.g. just
// restarted) retried on another (option redispatch 1). conf/haproxy.cfg
// is the same for real hosts.
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
		for i, ip := range ips {
			fmt.Fprintf(&b, "\tserver node%d %s:%d check port %d inter 500ms fall 2 rise 1\n", i+1, ip, r.Port, checkPort)
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
