package server

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/protocol"
)

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// vhostServer is a listening server with vhost ports (Serve is not run).
func vhostServer(t *testing.T, edit func(*config.ServerConfig)) (*Server, error) {
	t.Helper()
	cfg := config.DefaultServer()
	cfg.Auth.Token = "t"
	cfg.BindAddr, cfg.ProxyBindAddr, cfg.BindPort = "127.0.0.1", "127.0.0.1", freeTCPPort(t)
	cfg.P2P.StunAltPort = 0
	cfg.VhostHTTPPort, cfg.VhostHTTPSPort = freeTCPPort(t), freeTCPPort(t)
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(&cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(context.Background()); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		s.ln.Close()
		s.stun.Close()
		s.closeVhost()
	})
	return s, nil
}

func TestVhostRegistration(t *testing.T) {
	s, err := vhostServer(t, func(c *config.ServerConfig) { c.SubDomainHost = "hop.test" })
	if err != nil {
		t.Fatal(err)
	}
	mk := func(user, id string) *session {
		return &session{srv: s, user: user, clientID: id, log: slog.New(slog.DiscardHandler), proxies: map[string]*proxy{}}
	}
	alice, bob := mk("alice", "a1"), mk("bob", "b1")
	web := func(name string, domains ...string) *protocol.NewProxy {
		return &protocol.NewProxy{Name: name, ProxyType: protocol.ProxyHTTP, CustomDomains: domains}
	}
	if r := s.openProxy(alice, web("site", "a.hop.test", "*.w.hop.test")); r.Error != "" {
		t.Fatalf("alice: %+v", r)
	}
	r := s.openProxy(bob, web("mine", "b.hop.test", "a.hop.test"))
	if r.Code != protocol.CodeDomainInUse || !strings.Contains(r.Error, `domain "a.hop.test" is served by alice.site`) {
		t.Fatalf("bob's claim of alice's domain: %+v", r)
	}
	if _, ok := s.vhost.http.Lookup("b.hop.test", "/", ""); ok {
		t.Fatal("a refused proxy left a route")
	}
	if r := s.openProxy(bob, &protocol.NewProxy{Name: "api", ProxyType: protocol.ProxyHTTP, CustomDomains: []string{"a.hop.test"}, Locations: []string{"/api"}}); r.Error != "" {
		t.Fatalf("another location of the domain: %+v", r)
	}
	if r := s.openProxy(bob, &protocol.NewProxy{Name: "sub", ProxyType: protocol.ProxyHTTP, Subdomain: "bob"}); r.Error != "" {
		t.Fatalf("subdomain: %+v", r)
	}
	if rt, ok := s.vhost.http.Lookup("bob.hop.test", "/", ""); !ok || rt.Name != "bob.sub" {
		t.Fatalf("bob.hop.test: %+v %v", rt, ok)
	}
	if r := s.openProxy(bob, &protocol.NewProxy{Name: "tls", ProxyType: protocol.ProxyHTTPS, CustomDomains: []string{"a.hop.test"}}); r.Error != "" {
		t.Fatalf("https of a domain http has: %+v", r)
	}
	// When alice's proxy goes, bob gets the domain.
	s.closeProxy(s.proxies[proxyKey{"alice", "site"}])
	if r := s.openProxy(bob, web("mine", "b.hop.test", "a.hop.test")); r.Error != "" {
		t.Fatalf("after alice left: %+v", r)
	}
	if rt, _ := s.vhost.http.Lookup("x.w.hop.test", "/", ""); rt != nil {
		t.Fatalf("alice's wildcard outlived her proxy: %+v", rt)
	}
}

func TestVhostRefused(t *testing.T) {
	s, err := vhostServer(t, func(c *config.ServerConfig) { c.VhostHTTPSPort = 0 })
	if err != nil {
		t.Fatal(err)
	}
	ss := &session{srv: s, user: "", clientID: "c", log: slog.New(slog.DiscardHandler), proxies: map[string]*proxy{}}
	if r := s.openProxy(ss, &protocol.NewProxy{Name: "tls", ProxyType: protocol.ProxyHTTPS, CustomDomains: []string{"a.test"}}); r.Code != protocol.CodeVhostDisabled || !strings.Contains(r.Error, "vhostHTTPSPort is not set") {
		t.Fatalf("https without vhostHTTPSPort: %+v", r)
	}
	if r := s.openProxy(ss, &protocol.NewProxy{Name: "sub", ProxyType: protocol.ProxyHTTP, Subdomain: "x"}); r.Code != protocol.CodeVhostDisabled || !strings.Contains(r.Error, "needs the server's subDomainHost") {
		t.Fatalf("subdomain without subDomainHost: %+v", r)
	}
	if len(s.proxies) != 0 {
		t.Fatalf("refused proxies registered: %v", s.proxies)
	}
}

func TestVhostPortTaken(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, err = vhostServer(t, func(c *config.ServerConfig) { c.VhostHTTPSPort = busy.Addr().(*net.TCPAddr).Port })
	if err == nil || !strings.Contains(err.Error(), "listen on vhostHTTPSPort 127.0.0.1:") {
		t.Fatalf("Listen with vhostHTTPSPort taken: %v", err)
	}
}
