package client_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/client"
	"github.com/hopproxy/hop/pkg/config"
)

// greeter is a local service that says its name on every connection,
// then echoes.
func greeter(t *testing.T, name string) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); io.WriteString(c, name+"\n"); io.Copy(c, c); c.Close() }()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return l.Addr().(*net.TCPAddr).Port
}

// greeting is the name the service behind addr says, or "" when it
// cannot be reached.
func greeting(addr string) string {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return ""
	}
	return strings.TrimSpace(line)
}

// echoes reports whether an open connection (past its greeting) still
// echoes.
func echoes(c net.Conn, r *bufio.Reader, msg string) error {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if line != msg+"\n" {
		return errors.New("echoed " + line)
	}
	return nil
}

func dialGreeted(t *testing.T, addr, want string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := bufio.NewReader(c)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || line != want+"\n" {
		t.Fatalf("greeting %q, %v; want %s", line, err, want)
	}
	return c, r
}

// TestReloadKeepsConnections: a reload that adds B, removes C and changes
// D's local port keeps A as it was, a connection through it included; B
// works, C's remote port closes and its open connection ends after the
// grace period, D reaches its new local service. Keys outside the proxies
// are reported, not applied; an invalid config is refused; a stopped
// client refuses reloads.
func TestReloadKeepsConnections(t *testing.T) {
	var srvLog, cliLog logBuf
	port := freePort(t)
	runServer(t, serverConfig(port), srvLog.logger())
	rA, rB, rC, rD := freePort(t), freePort(t), freePort(t), freePort(t)
	a, b, cc, d1, d2 := greeter(t, "A"), greeter(t, "B"), greeter(t, "C"), greeter(t, "D1"), greeter(t, "D2")
	cfg := clientConfig(port, tcpProxy("a", a, rA), tcpProxy("c", cc, rC), tcpProxy("d", d1, rD))
	c, stop := runClient(t, cfg, cliLog.logger())
	defer func() {
		if t.Failed() {
			t.Logf("client:\n%s\nserver:\n%s", cliLog.String(), srvLog.String())
		}
	}()
	for _, x := range []struct {
		port int
		name string
	}{{rA, "A"}, {rC, "C"}, {rD, "D1"}} {
		eventually(t, 10*time.Second, "proxy "+x.name, func() bool { return greeting(addr(x.port)) == x.name })
	}
	connA, readA := dialGreeted(t, addr(rA), "A")
	connC, readC := dialGreeted(t, addr(rC), "C")
	if err := echoes(connA, readA, "before"); err != nil {
		t.Fatal(err)
	}

	next := clientConfig(port, tcpProxy("b", b, rB), tcpProxy("a", a, rA), tcpProxy("d", d2, rD))
	res, err := c.Reload(next)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Added, []string{"proxy:b"}) || !slices.Equal(res.Removed, []string{"proxy:c"}) ||
		!slices.Equal(res.Changed, []string{"proxy:d"}) || res.Unchanged != 1 || len(res.NeedsRestart) != 0 {
		t.Fatalf("result %+v", res)
	}
	eventually(t, 10*time.Second, "the added proxy B", func() bool { return greeting(addr(rB)) == "B" })
	eventually(t, 10*time.Second, "D on its new local port", func() bool { return greeting(addr(rD)) == "D2" })
	eventually(t, 10*time.Second, "C's remote port to refuse", func() bool {
		conn, err := net.DialTimeout("tcp", addr(rC), time.Second)
		if err == nil {
			conn.Close()
		}
		return err != nil
	})
	connC.SetReadDeadline(time.Now().Add(10 * time.Second)) // gracePeriod is 200ms
	if _, err := readC.ReadString('\n'); err == nil || isTimeout(err) {
		t.Fatalf("C's open connection outlived its removal: %v", err)
	}
	eventually(t, 10*time.Second, "Status to show b, a and d running", func() bool {
		st := c.Status()
		var got []string
		for _, p := range st.Proxies {
			got = append(got, p.Name+"="+p.State)
		}
		return slices.Equal(got, []string{"b=running", "a=running", "d=running"})
	})
	if snap := c.MetricsSnapshot(); len(snap.Proxies) != 3 || snap.Proxies[0].Name != "b" || snap.Proxies[0].Conns.Total == 0 {
		t.Fatalf("metrics after the reload: %+v", snap.Proxies)
	}
	for i := range 3 {
		if err := echoes(connA, readA, "after"+string(rune('0'+i))); err != nil {
			t.Fatalf("the connection through the unchanged proxy A broke across the reload: %v", err)
		}
	}

	// Keys that need a restart: reported, proxies untouched.
	again := *next
	again.ServerPort = port + 1
	again.Heartbeat.Interval = config.Dur(7 * time.Second)
	res, err = c.Reload(&again)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Added)+len(res.Removed)+len(res.Changed) != 0 || res.Unchanged != 3 ||
		!slices.Equal(res.NeedsRestart, []string{"serverPort", "heartbeat.interval"}) {
		t.Fatalf("result %+v", res)
	}

	// An invalid config is refused and the running one stays.
	bad := *next
	bad.Proxies = append(slices.Clone(next.Proxies), tcpProxy("a", a, rC)) // a duplicate name
	if _, err := c.Reload(&bad); err == nil {
		t.Fatal("an invalid config was applied")
	}
	if err := echoes(connA, readA, "still"); err != nil {
		t.Fatal(err)
	}
	if greeting(addr(rB)) != "B" {
		t.Fatal("B stopped after a refused reload")
	}
	if st := c.Stats(); st.Sessions != 1 {
		t.Fatalf("the session was replaced: %+v", st)
	}

	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Reload(next); !errors.Is(err, client.ErrStopped) {
		t.Fatalf("Reload after Run: %v, want ErrStopped", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestReloadVisitors: a visitor added by a reload listens and reaches its
// proxy, a removed one's port closes, one whose port was taken at start
// is started by the next reload.
func TestReloadVisitors(t *testing.T) {
	var srvLog, ownLog, visLog logBuf
	port := freePort(t)
	runServer(t, serverConfig(port), srvLog.logger())
	p := config.DefaultProxy(config.ProxySTCP)
	p.Name, p.LocalPort, p.SecretKey = "sec", greeter(t, "S"), "k3y-k3y-k3y"
	own := clientConfig(port, p)
	own.ClientID = "owner"
	owner, _ := runClient(t, own, ownLog.logger())
	eventually(t, 10*time.Second, "the secret proxy", func() bool { return strings.Contains(srvLog.String(), "secret proxy registered") })

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	visitor := func(name string, port int) config.VisitorConfig {
		v := config.DefaultVisitor(config.ProxySTCP)
		v.Name, v.ServerName, v.SecretKey, v.BindPort = name, "sec", "k3y-k3y-k3y", port
		return v
	}
	v1 := visitor("v1", freePort(t))
	vt := visitor("vt", taken.Addr().(*net.TCPAddr).Port)
	vis := clientConfig(port)
	vis.ClientID = "laptop"
	vis.Visitors = []config.VisitorConfig{v1, vt}
	c, _ := runClient(t, vis, visLog.logger())
	defer func() {
		if t.Failed() {
			t.Logf("visitor:\n%s\nowner:\n%s", visLog.String(), ownLog.String())
		}
	}()
	eventually(t, 10*time.Second, "visitor v1", func() bool { return greeting(addr(v1.BindPort)) == "S" })
	eventually(t, 10*time.Second, "vt's failure to listen", func() bool { return strings.Contains(visLog.String(), "visitor cannot listen") })
	open, openR := dialGreeted(t, addr(v1.BindPort), "S")
	taken.Close()

	v2 := visitor("v2", freePort(t))
	next := *vis
	next.Visitors = []config.VisitorConfig{vt, v2}
	res, err := c.Reload(&next)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Added, []string{"visitor:v2"}) || !slices.Equal(res.Removed, []string{"visitor:v1"}) || res.Unchanged != 1 {
		t.Fatalf("result %+v", res)
	}
	if greeting(addr(v2.BindPort)) != "S" {
		t.Fatal("the added visitor does not reach the proxy")
	}
	if greeting(addr(vt.BindPort)) != "S" {
		t.Fatal("the visitor whose port was taken at start did not start on reload")
	}
	if conn, err := net.DialTimeout("tcp", addr(v1.BindPort), time.Second); err == nil {
		conn.Close()
		t.Fatal("the removed visitor's port still accepts")
	}
	open.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := openR.ReadString('\n'); err == nil || isTimeout(err) {
		t.Fatalf("the removed visitor's connection outlived the grace period: %v", err)
	}

	// A new secretKey on both sides: the owner's proxy and the visitor
	// restart (the visitor on its same port) and meet again.
	p.SecretKey = "n3w-k3y-n3w-k3y"
	ownNext := *own
	ownNext.Proxies = []config.ProxyConfig{p}
	if res, err := owner.Reload(&ownNext); err != nil || !slices.Equal(res.Changed, []string{"proxy:sec"}) {
		t.Fatalf("owner's result %+v, %v", res, err)
	}
	v2.SecretKey = p.SecretKey
	last := *vis
	last.Visitors = []config.VisitorConfig{vt, v2}
	if res, err = c.Reload(&last); err != nil || !slices.Equal(res.Changed, []string{"visitor:v2"}) || res.Unchanged != 1 {
		t.Fatalf("result %+v, %v", res, err)
	}
	eventually(t, 10*time.Second, "the changed visitor to reach the changed proxy", func() bool { return greeting(addr(v2.BindPort)) == "S" })
	if greeting(addr(vt.BindPort)) != "" {
		t.Fatal("a visitor with the old secretKey still reaches the proxy")
	}
}

// TestReloadOffline: a proxy added while the server is away is registered
// at the next login, one removed meanwhile is not; reloads from several
// goroutines at once (run with -race) leave the last config applied.
func TestReloadOffline(t *testing.T) {
	var srvLog, cliLog logBuf
	port := freePort(t)
	stopSrv := runServer(t, serverConfig(port), srvLog.logger())
	rA, rB, rC := freePort(t), freePort(t), freePort(t)
	a, b, cc := greeter(t, "A"), greeter(t, "B"), greeter(t, "C")
	c, _ := runClient(t, clientConfig(port, tcpProxy("a", a, rA), tcpProxy("c", cc, rC)), cliLog.logger())
	defer func() {
		if t.Failed() {
			t.Logf("client:\n%s", cliLog.String())
		}
	}()
	eventually(t, 10*time.Second, "proxy A", func() bool { return greeting(addr(rA)) == "A" })
	stopSrv()
	eventually(t, 10*time.Second, "the client to notice", func() bool { return !c.Stats().LoggedIn })

	var wg sync.WaitGroup
	for i := range 8 { // the last one applied is the final config below
		wg.Add(1)
		go func() {
			defer wg.Done()
			ps := []config.ProxyConfig{tcpProxy("a", a, rA)}
			if i%2 == 0 {
				ps = append(ps, tcpProxy("c", cc, rC))
			}
			if _, err := c.Reload(clientConfig(port, ps...)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	res, err := c.Reload(clientConfig(port, tcpProxy("a", a, rA), tcpProxy("b", b, rB)))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(res.Added, "proxy:b") || res.Unchanged != 1 {
		t.Fatalf("result %+v", res)
	}

	runServer(t, serverConfig(port), srvLog.logger())
	eventually(t, 20*time.Second, "B after the next login", func() bool { return greeting(addr(rB)) == "B" })
	if greeting(addr(rA)) != "A" {
		t.Fatal("A is not registered again")
	}
	if conn, err := net.DialTimeout("tcp", addr(rC), time.Second); err == nil {
		conn.Close()
		t.Fatal("the proxy removed while offline was registered")
	}
}

// TestReloadRemovesXTCPProxy: removing an xtcp proxy ends its P2P links
// after the grace period, an open connection through one included; added
// back, the visitor reaches it again.
func TestReloadRemovesXTCPProxy(t *testing.T) {
	t.Cleanup(client.LoopbackOnlyCandidates()) // the last cleanup: after the clients stopped punching
	var srvLog, ownLog, visLog logBuf
	port := freePort(t)
	runServer(t, serverConfig(port), srvLog.logger())
	p := config.DefaultProxy(config.ProxyXTCP)
	p.Name, p.LocalPort, p.SecretKey = "x", greeter(t, "X"), "p2p-s3cret"
	own := clientConfig(port, p)
	own.ClientID = "owner"
	owner, _ := runClient(t, own, ownLog.logger())
	eventually(t, 10*time.Second, "the xtcp proxy", func() bool { return strings.Contains(srvLog.String(), "secret proxy registered") })
	v := config.DefaultVisitor(config.ProxyXTCP)
	v.Name, v.ServerName, v.SecretKey, v.BindPort = "vx", "x", p.SecretKey, freePort(t)
	vis := clientConfig(port)
	vis.ClientID = "laptop"
	vis.Visitors = []config.VisitorConfig{v}
	runClient(t, vis, visLog.logger())
	defer func() {
		if t.Failed() {
			t.Logf("visitor:\n%s\nowner:\n%s", visLog.String(), ownLog.String())
		}
	}()
	eventually(t, 20*time.Second, "the xtcp visitor", func() bool { return greeting(addr(v.BindPort)) == "X" })
	open, openR := dialGreeted(t, addr(v.BindPort), "X")

	empty := *own
	empty.Proxies = nil
	if res, err := owner.Reload(&empty); err != nil || !slices.Equal(res.Removed, []string{"proxy:x"}) {
		t.Fatalf("result %+v, %v", res, err)
	}
	open.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := openR.ReadString('\n'); err == nil || isTimeout(err) {
		t.Fatalf("a connection over the removed proxy's link outlived the grace period: %v", err)
	}
	eventually(t, 10*time.Second, "the server to forget the proxy", func() bool { return strings.Contains(srvLog.String(), "proxy closed by client") })
	if greeting(addr(v.BindPort)) != "" {
		t.Fatal("the visitor still reaches the removed proxy")
	}

	if res, err := owner.Reload(own); err != nil || !slices.Equal(res.Added, []string{"proxy:x"}) {
		t.Fatalf("result %+v, %v", res, err)
	}
	eventually(t, 20*time.Second, "the visitor to reach the proxy added back", func() bool { return greeting(addr(v.BindPort)) == "X" })
}
