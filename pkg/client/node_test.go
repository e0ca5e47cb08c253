package client_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/client"
	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/nodeset"
	"github.com/hopproxy/hop/pkg/server"
)

// nodeServer is a hops node whose proxies listen on their own loopback
// address, so that several nodes on one machine can open the same port.
func nodeServer(t *testing.T, proxyAddr string, log *logBuf) (*server.Server, int, func()) {
	t.Helper()
	port := freePort(t)
	cfg := serverConfig(port)
	cfg.ProxyBindAddr = proxyAddr
	srv, stop := startServer(t, cfg, log.logger())
	return srv, port, stop
}

func remotePortOf(srv *server.Server, name string) int {
	for _, p := range srv.ProxyStats() {
		if p.Name == name {
			return p.RemotePort
		}
	}
	return 0
}

// A client with serverAddrs attaches to every node: each serves its
// proxies, a remotePort = 0 proxy gets one port on all of them, and with
// one node gone the other serves on while the client stays up.
func TestEveryNodeServes(t *testing.T) {
	var s1log, s2log, clog logBuf
	srv1, p1, stop1 := nodeServer(t, "127.0.0.11", &s1log)
	srv2, p2, stop2 := nodeServer(t, "127.0.0.12", &s2log)
	defer stop2()
	fixed := freePort(t)
	ccfg := clientConfig(0, tcpProxy("fixed", echoService(t), fixed), tcpProxy("auto", echoService(t), 0))
	ccfg.ServerAddr, ccfg.ServerPort = "", 0
	ccfg.ServerAddrs = []string{"127.0.0.1:" + strconv.Itoa(p1), "127.0.0.1:" + strconv.Itoa(p2)}
	c, stopCli := runClient(t, ccfg, clog.logger())
	defer stopCli()

	at := func(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }
	eventually(t, 10*time.Second, "both nodes to serve the fixed port", func() bool {
		return echoWorks(at("127.0.0.11", fixed)) && echoWorks(at("127.0.0.12", fixed))
	})
	var auto int
	eventually(t, 10*time.Second, "both nodes to open one port for remotePort = 0", func() bool {
		a1, a2 := remotePortOf(srv1, "auto"), remotePortOf(srv2, "auto")
		auto = a1
		return a1 != 0 && a1 == a2 && echoWorks(at("127.0.0.11", a1)) && echoWorks(at("127.0.0.12", a2))
	})
	st := c.Status()
	if len(st.Nodes) != 2 || !st.Nodes[0].Online || !st.Nodes[1].Online || !st.Online {
		t.Fatalf("status nodes %+v, online %v", st.Nodes, st.Online)
	}

	stop1()
	eventually(t, 10*time.Second, "the client to notice node 1 is gone", func() bool {
		st := c.Status()
		return len(st.Nodes) == 2 && !st.Nodes[0].Online && st.Nodes[1].Online
	})
	if !c.Status().Online {
		t.Fatal("the client is offline with one of two nodes up")
	}
	for i := range 5 {
		if !echoWorks(at("127.0.0.12", fixed)) || !echoWorks(at("127.0.0.12", auto)) {
			t.Fatalf("echo %d through the remaining node failed", i)
		}
	}
	if n := strings.Count(clog.String(), `msg="connection lost"`); n < 1 {
		t.Fatalf("no connection lost logged for node 1:\n%s", clog.String())
	}
}

// A node that refuses the client's token for good stops that node's
// loop only: the others serve on. When every node refuses, Run ends with
// ErrPermanent.
func TestNodeRefusingTokenStopsOnlyThatNode(t *testing.T) {
	var s1log, s2log, clog logBuf
	_, p1, stop1 := nodeServer(t, "127.0.0.11", &s1log)
	defer stop1()
	port2 := freePort(t)
	bad := serverConfig(port2)
	bad.ProxyBindAddr = "127.0.0.12"
	bad.Auth.Token = "another-token"
	_, stop2 := startServer(t, bad, s2log.logger())
	defer stop2()
	remote := freePort(t)
	ccfg := clientConfig(0, tcpProxy("echo", echoService(t), remote))
	ccfg.ServerAddr, ccfg.ServerPort = "", 0
	ccfg.ServerAddrs = []string{"127.0.0.1:" + strconv.Itoa(p1), "127.0.0.1:" + strconv.Itoa(port2)}
	c, stopCli := runClient(t, ccfg, clog.logger())
	defer stopCli()
	eventually(t, 10*time.Second, "the good node to serve", func() bool { return echoWorks("127.0.0.11:" + strconv.Itoa(remote)) })
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := c.Status()
		if len(st.Nodes) == 2 && st.Nodes[1].Stopped && !st.Nodes[0].Stopped && st.Nodes[0].Online {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the refusing node was not given up: nodes %+v\n%s", st.Nodes, clog.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(clog.String(), `msg="giving up on this server: this cannot be fixed by reconnecting"`) ||
		!strings.Contains(clog.String(), `server=127.0.0.1:`+strconv.Itoa(port2)+` error="login to`) {
		t.Fatalf("no line about the refusing node:\n%s", clog.String())
	}

	// Every node refusing: Run ends with ErrPermanent.
	only := clientConfig(port2)
	cl, err := client.New(only, clog.logger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.Run(ctx); !errors.Is(err, client.ErrPermanent) {
		t.Fatalf("Run with every node refusing: %v, want ErrPermanent", err)
	}
	_ = config.ProxyTCP
}

// Nodes that DNS adds are attached to, with the client's proxies; nodes
// it drops are detached from (their session closed), the others untouched.
func TestNodesAddedAndRemoved(t *testing.T) {
	var s1log, s2log, clog logBuf
	srv1, p1, stop1 := nodeServer(t, "127.0.0.11", &s1log)
	defer stop1()
	_, p2, stop2 := nodeServer(t, "127.0.0.12", &s2log)
	defer stop2()
	remote := freePort(t)
	ccfg := clientConfig(p1, tcpProxy("echo", echoService(t), remote))
	c, err := client.New(ccfg, clog.logger())
	if err != nil {
		t.Fatal(err)
	}
	n1 := nodeset.Node{Addr: "127.0.0.1:" + strconv.Itoa(p1), Name: "hops.test:7000"}
	n2 := nodeset.Node{Addr: "127.0.0.1:" + strconv.Itoa(p2), Name: "hops.test:7000"}
	changes := make(chan [2][]nodeset.Node)
	client.WatchNodes(c, func(ctx context.Context, onChange func(added, removed []nodeset.Node)) {
		for {
			select {
			case ch := <-changes:
				onChange(ch[0], ch[1])
			case <-ctx.Done():
				return
			}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	at := func(ip string) string { return ip + ":" + strconv.Itoa(remote) }
	changes <- [2][]nodeset.Node{{n1}, nil}
	eventually(t, 10*time.Second, "node 1 to serve", func() bool { return echoWorks(at("127.0.0.11")) })
	if echoWorks(at("127.0.0.12")) {
		t.Fatal("node 2 serves before it was added")
	}
	changes <- [2][]nodeset.Node{{n2}, nil}
	eventually(t, 10*time.Second, "the added node 2 to serve", func() bool { return echoWorks(at("127.0.0.12")) })
	if st := c.Status(); len(st.Nodes) != 2 || st.Nodes[1].Addr != n2.Addr || st.Nodes[1].Name != "hops.test:7000" {
		t.Fatalf("status nodes %+v", st.Nodes)
	}
	changes <- [2][]nodeset.Node{nil, {n1}}
	eventually(t, 10*time.Second, "the dropped node 1 to lose the client", func() bool {
		return len(srv1.Clients()) > 0 && !srv1.Clients()[0].Online && !echoWorks(at("127.0.0.11"))
	})
	if !echoWorks(at("127.0.0.12")) || len(c.Status().Nodes) != 1 {
		t.Fatalf("after dropping node 1: echo through node 2 %v, nodes %+v", echoWorks(at("127.0.0.12")), c.Status().Nodes)
	}
}
