package server

import (
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/protocol"
)

// reloadServer is a server (not listening) that logs into lines, with a
// LevelVar at info.
func reloadServer(t *testing.T) (*Server, *logLines, *slog.LevelVar) {
	t.Helper()
	cfg := config.DefaultServer()
	cfg.Auth.Token = "old-token-0123456789abcdef"
	cfg.ProxyBindAddr = "127.0.0.1"
	lines := &logLines{}
	s, err := New(&cfg, slog.New(slog.NewTextHandler(lines, nil)))
	if err != nil {
		t.Fatal(err)
	}
	lv := new(slog.LevelVar)
	s.SetLogLevelVar(lv)
	return s, lines, lv
}

func TestReloadAppliesAndReportsRestarts(t *testing.T) {
	s, lines, lv := reloadServer(t)
	next := *s.cfg
	next.AllowPorts = []config.PortRange{{Start: 2000, End: 3000}}
	next.MaxProxiesPerClient = 3
	next.Auth.Token = "new-token-0123456789abcdef"
	next.Auth.Users = []config.AuthUser{{Name: "alice", Token: "alice-token-0123456789abcdef"}}
	next.Log.Level = "debug"
	next.BindPort = 7100
	next.Heartbeat.Interval = config.Dur(3 * time.Second)
	next.Limits.MaxHandshakes = 5
	applied, restart, err := s.Reload(&next)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"auth.token", "auth.users", "allowPorts", "maxProxiesPerClient", "log.level"}; !slices.Equal(applied, want) {
		t.Errorf("applied %v, want %v", applied, want)
	}
	if want := []string{"bindPort", "heartbeat.interval", "limits.maxHandshakes"}; !slices.Equal(restart, want) {
		t.Errorf("needsRestart %v, want %v", restart, want)
	}
	if lv.Level() != slog.LevelDebug {
		t.Errorf("log level %v", lv.Level())
	}
	pol := s.policy()
	if !pol.PortAllowed(2500) || pol.PortAllowed(4000) || pol.MaxProxiesPerClient != 3 {
		t.Errorf("policy %+v", pol)
	}
	if tok, ok := s.tokenFor("alice"); !ok || tok != "alice-token-0123456789abcdef" {
		t.Errorf("alice's token %q %v", tok, ok)
	}
	if tok, ok := s.tokenFor(""); !ok || tok != "new-token-0123456789abcdef" {
		t.Errorf("shared token %q %v", tok, ok)
	}
	// What needs a restart keeps its running value.
	if pol.BindPort != 7000 || s.cfg.BindPort != 7000 || pol.Heartbeat.Interval.Duration != 10*time.Second || pol.Limits.MaxHandshakes != config.DefaultMaxHandshakes {
		t.Errorf("restart keys changed: %+v", pol)
	}
	out := lines.String()
	for _, want := range []string{
		`msg="config reloaded" applied="auth.token, auth.users, allowPorts, maxProxiesPerClient, log.level"`,
		`level=WARN msg="bindPort changed: needs a restart"`,
		`level=WARN msg="heartbeat.interval changed: needs a restart"`,
		`level=WARN msg="limits.maxHandshakes changed: needs a restart"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "new-token") || strings.Contains(out, "alice-token") {
		t.Errorf("a token was logged:\n%s", out)
	}

	// The same file again: nothing new to apply, the restarts still due.
	applied, restart, err = s.Reload(&next)
	if err != nil || len(applied) != 0 || len(restart) != 3 {
		t.Fatalf("second reload: %v %v %v", applied, restart, err)
	}
	if !strings.Contains(lines.String(), `msg="config reloaded: nothing to apply" needs_restart=3`) {
		t.Errorf("log:\n%s", lines.String())
	}
	// Back to the start: everything applies back, nothing needs a restart.
	orig := config.DefaultServer()
	orig.Auth.Token, orig.ProxyBindAddr = "old-token-0123456789abcdef", "127.0.0.1"
	applied, restart, err = s.Reload(&orig)
	if err != nil || len(applied) != 5 || len(restart) != 0 || lv.Level() != slog.LevelInfo {
		t.Fatalf("reload of the original: %v %v %v, level %v", applied, restart, err, lv.Level())
	}
}

func TestReloadWithoutLevelVar(t *testing.T) {
	cfg := config.DefaultServer()
	cfg.Auth.Token = "old-token-0123456789abcdef"
	s, err := New(&cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	next := cfg
	next.Log.Level = "warn"
	next.Log.To = "stdout"
	applied, restart, err := s.Reload(&next)
	if err != nil || len(applied) != 0 || !slices.Equal(restart, []string{"log.level", "log.to"}) {
		t.Fatalf("%v %v %v", applied, restart, err)
	}
}

func TestReloadRefusesInvalid(t *testing.T) {
	s, lines, _ := reloadServer(t)
	next := *s.cfg
	next.AllowPorts = []config.PortRange{{Start: 3000, End: 2000}}
	next.MaxProxiesPerClient = 0
	applied, restart, err := s.Reload(&next)
	if !errors.Is(err, config.ErrInvalid) || applied != nil || restart != nil {
		t.Fatalf("%v %v %v", applied, restart, err)
	}
	if !strings.Contains(err.Error(), "allowPorts[0]: start 3000 is greater than end 2000") || !strings.Contains(err.Error(), "maxProxiesPerClient") {
		t.Errorf("error: %v", err)
	}
	if s.policy() != s.cfg || lines.String() != "" {
		t.Errorf("an invalid config changed something; log:\n%s", lines.String())
	}
}

// TestReloadAppliesToNewProxies: a port allowed by the reload can be
// registered; a proxy registered before a reload that disallows its port
// stays; maxProxiesPerClient counts from the next registration.
func TestReloadAppliesToNewProxies(t *testing.T) {
	s, _, _ := reloadServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	next := *s.cfg
	next.AllowPorts = []config.PortRange{{Start: 1, End: 1}}
	if _, _, err := s.Reload(&next); err != nil {
		t.Fatal(err)
	}
	ss := &session{srv: s, user: "", clientID: "c", log: slog.New(slog.DiscardHandler), proxies: map[string]*proxy{}}
	defer ss.closeProxies()
	tcp := &protocol.NewProxy{Name: "web", ProxyType: protocol.ProxyTCP, RemotePort: port}
	if r := s.openProxy(ss, tcp); r.Code != protocol.CodePortNotAllowed {
		t.Fatalf("port %d outside allowPorts: %+v", port, r)
	}
	next.AllowPorts = []config.PortRange{{Start: port, End: port}}
	next.MaxProxiesPerClient = 2
	if _, _, err := s.Reload(&next); err != nil {
		t.Fatal(err)
	}
	if r := s.openProxy(ss, tcp); r.Error != "" || r.RemotePort != port {
		t.Fatalf("port %d after the reload allowed it: %+v", port, r)
	}
	next.AllowPorts = []config.PortRange{{Start: 1, End: 1}}
	next.MaxProxiesPerClient = 1
	if _, _, err := s.Reload(&next); err != nil {
		t.Fatal(err)
	}
	if p := s.proxies[proxyKey{"", "web"}]; p == nil || p.port != port {
		t.Fatal("the reload closed a registered proxy")
	}
	if r := s.openProxy(ss, &protocol.NewProxy{Name: "db", ProxyType: protocol.ProxySTCP}); r.Code != protocol.CodeTooManyProxies {
		t.Fatalf("second proxy over maxProxiesPerClient 1: %+v", r)
	}
}

// TestReloadConcurrent: reloads race logins' token lookups and proxy
// registrations (for -race).
func TestReloadConcurrent(t *testing.T) {
	s, _, _ := reloadServer(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		ss := &session{srv: s, clientID: "c", log: slog.New(slog.DiscardHandler), proxies: map[string]*proxy{}}
		for {
			select {
			case <-stop:
				return
			default:
			}
			s.tokenFor("")
			s.openProxy(ss, &protocol.NewProxy{Name: "x", ProxyType: protocol.ProxySTCP, RemotePort: 0})
		}
	}()
	for i := 0; i < 200; i++ {
		next := *s.cfg
		next.MaxProxiesPerClient = 1 + i%5
		next.AllowPorts = []config.PortRange{{Start: 2000 + i, End: 3000}}
		if _, _, err := s.Reload(&next); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if got := s.policy().MaxProxiesPerClient; got != 1+199%5 {
		t.Fatalf("maxProxiesPerClient %d", got)
	}
}
