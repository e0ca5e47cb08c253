package server_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/client"
	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/server"
)

func freePort(t *testing.T) int {
	t.Helper()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		u, err := net.ListenPacket("udp", l.Addr().String())
		l.Close()
		if err == nil {
			u.Close()
			return l.Addr().(*net.TCPAddr).Port
		}
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// apiGet fetches url with basic auth admin:pw into v and returns the status.
func apiGet(t *testing.T, url, pw string, v any) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if pw != "" {
		req.SetBasicAuth("admin", pw)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == 200 && v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("%s: %v", url, err)
		}
	}
	return resp.StatusCode
}

// TestAPI runs a server with its API and a client with a proxy, and
// checks serverinfo, clients (live, then gone with its loss) and proxies.
func TestAPI(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	scfg := config.DefaultServer()
	scfg.BindAddr, scfg.BindPort, scfg.ProxyBindAddr = "127.0.0.1", freePort(t), "127.0.0.1"
	scfg.Auth.Token = "t"
	scfg.GracePeriod = config.Dur(200 * time.Millisecond)
	scfg.P2P.StunAltPort = 0
	scfg.WebServer = config.WebServerConfig{Addr: "127.0.0.1", Port: freePort(t), User: "admin", Password: "pw"}
	srv, err := server.New(&scfg, log)
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithCancel(context.Background())
	if err := srv.Listen(sctx); err != nil {
		t.Fatal(err)
	}
	sdone := make(chan error, 1)
	go func() { sdone <- srv.Serve(sctx) }()
	t.Cleanup(func() {
		scancel()
		if err := <-sdone; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	base := "http://127.0.0.1:" + strconv.Itoa(scfg.WebServer.Port)
	eventually(t, "the API", func() bool {
		c, err := net.Dial("tcp", base[len("http://"):])
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if code := apiGet(t, base+"/api/clients", "", nil); code != 401 {
		t.Fatalf("without credentials: %d, want 401", code)
	}

	remote := freePort(t)
	ccfg := config.DefaultClient()
	ccfg.ServerAddr, ccfg.ServerPort, ccfg.ClientID = "127.0.0.1", scfg.BindPort, "laptop"
	ccfg.Auth.Token = "t"
	ccfg.GracePeriod = config.Dur(200 * time.Millisecond)
	ccfg.Heartbeat.Interval = config.Dur(100 * time.Millisecond)
	p := config.DefaultProxy(config.ProxyTCP)
	p.Name, p.LocalPort, p.RemotePort = "ssh", 22, remote
	ccfg.Proxies = []config.ProxyConfig{p}
	c, err := client.New(&ccfg, log)
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	cdone := make(chan error, 1)
	go func() { cdone <- c.Run(cctx) }()
	defer func() { ccancel(); <-cdone }()

	var proxies []server.ProxyInfo
	eventually(t, "the proxy in /api/proxies", func() bool {
		apiGet(t, base+"/api/proxies", "pw", &proxies)
		return len(proxies) == 1
	})
	if want := (server.ProxyInfo{Name: "ssh", ClientID: "laptop", Type: "tcp", RemotePort: remote, State: "online"}); !reflect.DeepEqual(proxies[0], want) {
		t.Fatalf("proxies %+v, want %+v", proxies, want)
	}
	var clients []server.ClientInfo
	eventually(t, "a heartbeat round trip and a second of uptime", func() bool {
		apiGet(t, base+"/api/clients", "pw", &clients)
		return len(clients) == 1 && clients[0].HeartbeatRttMs > 0 && clients[0].UptimeSeconds >= 1
	})
	if len(clients) != 1 || !clients[0].Online || clients[0].ClientID != "laptop" || clients[0].Sessions != 1 ||
		len(clients[0].Proxies) != 1 || clients[0].Proxies[0] != "ssh" || clients[0].ConnectedAt.IsZero() || len(clients[0].Losses) != 0 {
		t.Fatalf("clients %+v", clients)
	}
	if h, _, err := net.SplitHostPort(clients[0].Addr); err != nil || h != "127.0.0.1" {
		t.Fatalf("client addr %q", clients[0].Addr)
	}
	var info server.ServerInfo
	apiGet(t, base+"/api/serverinfo", "pw", &info)
	if info.BindPort != scfg.BindPort || info.ClientsConnected != 1 || info.Proxies != 1 || info.StartedAt.IsZero() || info.Version == "" {
		t.Fatalf("serverinfo %+v", info)
	}
	if want, err := scfg.Node(); err != nil || info.NodeName != want || scfg.NodeName != "" {
		t.Fatalf("serverinfo nodeName %q; want the default %q (%v)", info.NodeName, want, err)
	}

	ccancel()
	if err := <-cdone; err != nil {
		t.Fatalf("client Run: %v", err)
	}
	cdone <- nil // for the deferred wait
	eventually(t, "the client gone with its loss", func() bool {
		apiGet(t, base+"/api/clients", "pw", &clients)
		return len(clients) == 1 && !clients[0].Online
	})
	if cl := clients[0]; cl.UptimeSeconds != 0 || cl.Sessions != 1 || len(cl.Losses) != 1 || cl.Losses[0].Cause == "" || cl.Losses[0].At.IsZero() || !reflect.DeepEqual(cl.Proxies, []string{"ssh"}) ||
		cl.HeartbeatRttMs != 0 || cl.NATClass != "" {
		t.Fatalf("gone client %+v", cl)
	}
	apiGet(t, base+"/api/proxies", "pw", &proxies)
	if want := []server.ProxyInfo{{Name: "ssh", ClientID: "laptop", Type: "tcp", State: "offline"}}; !reflect.DeepEqual(proxies, want) {
		t.Fatalf("proxies after the client left: %+v, want %+v", proxies, want)
	}
	var rows []server.PairStats
	if code := apiGet(t, base+"/api/p2p", "pw", &rows); code != 200 {
		t.Fatalf("/api/p2p: %d", code)
	}
}
