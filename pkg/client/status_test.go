package client_test

import (
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/client"
	"github.com/hopproxy/hop/pkg/config"
)

// TestStatus: Status shows a registered proxy running, one whose remote
// port is held by another program failed with the server's reason and a
// next retry (then running once the port is free), a visitor running over
// the relay and one that cannot listen failed.
func TestStatus(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	port := freePort(t)
	runServer(t, serverConfig(port), log)

	okRemote, busyRemote := freePort(t), freePort(t)
	holder, err := net.Listen("tcp", addr(busyRemote))
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	secret := config.DefaultProxy(config.ProxySTCP)
	secret.Name, secret.LocalPort, secret.SecretKey = "sec", 22, "0123456789abcdef"
	cfg := clientConfig(port, tcpProxy("ok", 22, okRemote), tcpProxy("busy", 22, busyRemote), secret)
	cfg.ClientID = "status-test"
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	v1, v2 := config.DefaultVisitor(config.ProxySTCP), config.DefaultVisitor(config.ProxySTCP)
	v1.Name, v1.ServerName, v1.SecretKey, v1.BindPort = "v", "sec", secret.SecretKey, freePort(t)
	v2.Name, v2.ServerName, v2.SecretKey, v2.BindPort = "v-held", "sec", secret.SecretKey, held.Addr().(*net.TCPAddr).Port
	cfg.Visitors = []config.VisitorConfig{v1, v2}
	c, _ := runClient(t, cfg, log)

	var st client.Status
	eventually(t, 10*time.Second, "ok running and busy failed", func() bool {
		st = c.Status()
		return st.Online && len(st.Proxies) == 3 && st.Proxies[0].State == client.StateRunning && st.Proxies[1].State == client.StateFailed
	})
	if st.ClientID != "status-test" || st.Server != addr(port) {
		t.Errorf("status %+v", st)
	}
	if p := st.Proxies[0]; p.Name != "ok" || p.Type != "tcp" || p.RemoteAddr != ":"+strconv.Itoa(okRemote) || p.LocalAddr != "127.0.0.1:22" || p.Error != "" || p.NextRetry != "" {
		t.Errorf("running proxy %+v", p)
	}
	p := st.Proxies[1]
	next, err := time.Parse(time.RFC3339, p.NextRetry)
	if p.Name != "busy" || p.Error == "" || err != nil || next.Before(time.Now().Add(-time.Minute)) {
		t.Errorf("failed proxy %+v (next retry: %v)", p, err)
	}
	if p := st.Proxies[2]; p.State != client.StateRunning || p.RemoteAddr != "" {
		t.Errorf("secret proxy %+v", p)
	}
	if len(st.Visitors) != 2 {
		t.Fatalf("visitors %+v", st.Visitors)
	}
	if v := st.Visitors[0]; v.Name != "v" || v.State != client.StateRunning || v.Path != "relay" || v.ServerName != "sec" || v.BindAddr != addr(v1.BindPort) {
		t.Errorf("visitor %+v", v)
	}
	if v := st.Visitors[1]; v.State != client.StateFailed || v.Error == "" || v.Path != "" {
		t.Errorf("visitor that cannot listen %+v", v)
	}

	holder.Close()
	eventually(t, 10*time.Second, "busy running once its port is free", func() bool {
		st = c.Status()
		return st.Proxies[1].State == client.StateRunning
	})
	if p := st.Proxies[1]; p.Error != "" || p.NextRetry != "" {
		t.Errorf("recovered proxy %+v", p)
	}
}
