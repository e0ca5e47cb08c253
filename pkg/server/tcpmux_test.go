package server

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/protocol"
)

func TestTCPMuxRegistration(t *testing.T) {
	s, err := vhostServer(t, func(c *config.ServerConfig) { c.TCPMuxHTTPConnectPort = freeTCPPort(t) })
	if err != nil {
		t.Fatal(err)
	}
	mk := func(user, id string) *session {
		return &session{srv: s, user: user, clientID: id, log: slog.New(slog.DiscardHandler), proxies: map[string]*proxy{}}
	}
	alice, bob := mk("alice", "a1"), mk("bob", "b1")
	mux := func(name, routeBy string, domains ...string) *protocol.NewProxy {
		return &protocol.NewProxy{Name: name, ProxyType: protocol.ProxyTCPMux, Multiplexer: protocol.MultiplexerHTTPConnect, CustomDomains: domains, RouteByHTTPUser: routeBy}
	}
	if r := s.openProxy(alice, mux("ssh", "", "t.hop.test")); r.Error != "" || len(r.Domains) != 1 {
		t.Fatalf("alice: %+v", r)
	}
	if r := s.openProxy(bob, mux("ssh", "", "t.hop.test")); r.Code != protocol.CodeDomainInUse || !strings.Contains(r.Error, "alice.ssh") {
		t.Fatalf("bob's claim of alice's domain: %+v", r)
	}
	if r := s.openProxy(bob, mux("ssh2", "bob", "t.hop.test")); r.Error != "" {
		t.Fatalf("the same domain for one proxy user: %+v", r)
	}
	if rt, ok := s.vhost.tcpmux.Lookup("t.hop.test", "bob"); !ok || rt.Name != "bob.ssh2" {
		t.Fatalf("bob's route: %+v %v", rt, ok)
	}
	if rt, ok := s.vhost.tcpmux.Lookup("T.hop.test:22", "carol"); !ok || rt.Name != "alice.ssh" {
		t.Fatalf("another user's route: %+v %v", rt, ok)
	}
	// A tcpmux proxy and an http proxy do not share routes.
	if _, ok := s.vhost.http.Lookup("t.hop.test", "/", ""); ok {
		t.Fatal("a tcpmux domain routes http")
	}
	if got := proxyTypeLabel(protocol.ProxyTCPMux); got != "tcpmux" {
		t.Errorf("metrics label %q", got)
	}

	off, err := vhostServer(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := off.openProxy(&session{srv: off, user: "a", clientID: "a", log: slog.New(slog.DiscardHandler), proxies: map[string]*proxy{}}, mux("x", "", "x.hop.test")); r.Code != protocol.CodeVhostDisabled || !strings.Contains(r.Error, "tcpmuxHTTPConnectPort") {
		t.Fatalf("without tcpmuxHTTPConnectPort: %+v", r)
	}
}

// Every vhost port equal to bindPort: one listener, plain HTTP reaches
// the http vhost (404 for an unknown host), a CONNECT the tcpmux server,
// and Serve's shutdown frees the port.
func TestVhostSharesBindPort(t *testing.T) {
	cfg := config.DefaultServer()
	cfg.Auth.Token = "t"
	cfg.BindAddr, cfg.ProxyBindAddr, cfg.BindPort = "127.0.0.1", "127.0.0.1", freeTCPPort(t)
	cfg.P2P.StunAltPort = 0
	cfg.VhostHTTPPort, cfg.VhostHTTPSPort, cfg.TCPMuxHTTPConnectPort = cfg.BindPort, cfg.BindPort, cfg.BindPort
	cfg.GracePeriod = config.Dur(100 * time.Millisecond)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := New(&cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(context.Background()); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.BindPort))
	for _, a := range []net.Addr{s.Addr(), s.VhostHTTPAddr(), s.VhostHTTPSAddr(), s.TCPMuxAddr()} {
		if a.String() != addr {
			t.Fatalf("address %s, want the shared %s", a, addr)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()

	status := func(req string) string {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		io.WriteString(c, req)
		l, _ := bufio.NewReader(c).ReadString('\n')
		return strings.TrimSpace(l)
	}
	if got := status("GET / HTTP/1.1\r\nHost: none.hop.test\r\n\r\n"); got != "HTTP/1.1 404 Not Found" {
		t.Errorf("http: %q", got)
	}
	if got := status("CONNECT none.hop.test:22 HTTP/1.1\r\n\r\n"); got != "HTTP/1.1 404 Not Found" {
		t.Errorf("tcpmux: %q", got)
	}
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the shared port is still bound after Serve: %v", err)
	}
	ln.Close()
}
