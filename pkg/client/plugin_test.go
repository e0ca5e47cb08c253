package client_test

import (
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/config"
)

// unixGreeter is greeter on a unix socket.
func unixGreeter(t *testing.T, path, name string) {
	l, err := net.Listen("unix", path)
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
}

func unixProxy(name, path string, remote int) config.ProxyConfig {
	p := config.ProxyConfig{Name: name, Type: config.ProxyTCP, RemotePort: remote}
	p.Plugin = config.PluginConfig{Type: config.PluginUnixSocket, UnixPath: path}
	return p
}

// TestPluginProxyReload: a proxy with a plugin carries streams to it and
// counts their bytes; a reload that changes the plugin's config ends the
// old plugin's open streams after the grace period and sends new ones to
// the new plugin. Stopping the client closes its plugins (TestMain checks
// for leaked goroutines).
func TestPluginProxyReload(t *testing.T) {
	var srvLog, cliLog logBuf
	port := freePort(t)
	runServer(t, serverConfig(port), srvLog.logger())
	dir := t.TempDir()
	one, two := filepath.Join(dir, "one.sock"), filepath.Join(dir, "two.sock")
	unixGreeter(t, one, "ONE")
	unixGreeter(t, two, "TWO")
	remote := freePort(t)
	c, stop := runClient(t, clientConfig(port, unixProxy("sock", one, remote)), cliLog.logger())
	defer func() {
		if t.Failed() {
			t.Logf("client:\n%s\nserver:\n%s", cliLog.String(), srvLog.String())
		}
	}()
	eventually(t, 10*time.Second, "the plugin proxy", func() bool { return greeting(addr(remote)) == "ONE" })
	conn, r := dialGreeted(t, addr(remote), "ONE")
	if err := echoes(conn, r, "through the plugin"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the plugin's bytes in the metrics", func() bool {
		snap := c.MetricsSnapshot()
		return len(snap.Proxies) == 1 && snap.Proxies[0].Conns.In >= int64(len("through the plugin\n")) && snap.Proxies[0].Conns.Out >= int64(len("ONE\nthrough the plugin\n"))
	})

	if st := c.Status(); len(st.Proxies) != 1 || st.Proxies[0].LocalAddr != "plugin unix_domain_socket "+one {
		t.Errorf("status %+v; want localAddr %q", st.Proxies, "plugin unix_domain_socket "+one)
	}
	res, err := c.Reload(clientConfig(port, unixProxy("sock", two, remote)))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changed) != 1 || res.Changed[0] != "proxy:sock" {
		t.Fatalf("result %+v", res)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second)) // gracePeriod is 200ms
	if _, err := r.ReadString('\n'); err == nil || isTimeout(err) {
		t.Fatalf("the old plugin's stream outlived the reload: %v", err)
	}
	eventually(t, 10*time.Second, "the new plugin", func() bool { return greeting(addr(remote)) == "TWO" })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
