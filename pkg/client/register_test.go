package client

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/protocol"
)

// sent records the NewProxy messages a registrar sends, with the (fake)
// time of each.
type sent struct {
	mu   sync.Mutex
	msgs []*protocol.NewProxy
	at   []time.Time
}

func (s *sent) Send(_ context.Context, m protocol.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m.(*protocol.NewProxy))
	s.at = append(s.at, time.Now())
	return nil
}

func (s *sent) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, m := range s.msgs {
		out = append(out, m.Name)
	}
	return out
}

type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testProxies() []config.ProxyConfig {
	web := config.DefaultProxy(config.ProxyTCP)
	web.Name, web.LocalPort, web.RemotePort = "web", 80, 6000
	dns := config.DefaultProxy(config.ProxyUDP)
	dns.Name, dns.LocalPort, dns.RemotePort = "dns", 53, 6053
	return []config.ProxyConfig{web, dns}
}

func TestPermanentProxyCodes(t *testing.T) {
	for code, perm := range map[string]bool{
		protocol.CodePortNotAllowed: true, protocol.CodeBadRequest: true, protocol.CodeTooManyProxies: true,
		protocol.CodePortInUse: false, protocol.CodeProxyExists: false, protocol.CodeShuttingDown: false,
		"resource_exhausted": false, // a code this build does not know: retried
	} {
		if permanentProxyCode(code) != perm {
			t.Errorf("%s: permanent = %v, want %v", code, !perm, perm)
		}
	}
}

// A proxy refused for a passing reason is sent again after a backoff that
// grows up to the cap, with jitter, and logged; a permanent refusal and a
// success stop the retries; close cancels a pending one.
func TestRegistrarRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log syncLog
		ch := &sent{}
		var ready []string
		r := newRegistrar(ch, slog.New(slog.NewTextHandler(&log, nil)), testProxies(), time.Second, 8*time.Second,
			func(p config.ProxyConfig, _ *protocol.NewProxyResp) { ready = append(ready, p.Name) })
		defer r.close()
		if err := r.start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(ch.names(), ","); got != "web,dns" {
			t.Fatalf("sent %s", got)
		}
		// dns is refused for good.
		r.result(&protocol.NewProxyResp{Name: "dns", Code: protocol.CodePortNotAllowed, Error: "remotePort 6053 is not in allowPorts"})
		if r.pending("dns") || !strings.Contains(log.String(), "proxy dns refused: remotePort 6053 is not in allowPorts; not retrying") {
			t.Fatalf("permanent refusal: pending %v, log:\n%s", r.pending("dns"), log.String())
		}
		// web is refused four times: each retry comes after a delay within
		// ±20% of 1, 2, 4, 8 (the cap) seconds.
		start := time.Now()
		for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
			n := len(ch.names())
			r.result(&protocol.NewProxyResp{Name: "web", Code: protocol.CodePortInUse, Error: "remotePort 6000 is already in use"})
			if !r.pending("web") {
				t.Fatalf("refusal %d: no retry pending", i)
			}
			time.Sleep(want * 6 / 5)
			synctest.Wait()
			if len(ch.names()) != n+1 {
				t.Fatalf("refusal %d: no retry within %v", i, want*6/5)
			}
			ch.mu.Lock()
			d := ch.at[len(ch.at)-1].Sub(start)
			ch.mu.Unlock()
			if d < want*4/5 || d > want*6/5 {
				t.Fatalf("retry %d after %v, want %v ±20%%", i, d, want)
			}
			start = time.Now()
		}
		if !strings.Contains(log.String(), "proxy web refused: remotePort 6000 is already in use; retrying in") {
			t.Fatalf("log:\n%s", log.String())
		}
		// Accepted: no more retries, and the next refusal starts over at 1s.
		r.result(&protocol.NewProxyResp{Name: "web", RemotePort: 6000})
		if len(ready) != 1 || ready[0] != "web" || r.pending("web") {
			t.Fatalf("ready %v, pending %v", ready, r.pending("web"))
		}
		n := len(ch.names())
		r.result(&protocol.NewProxyResp{Name: "web", Code: protocol.CodeProxyExists, Error: "held"})
		time.Sleep(1200 * time.Millisecond)
		synctest.Wait()
		if len(ch.names()) != n+1 {
			t.Fatal("backoff not reset after a success")
		}
		// close cancels a pending retry.
		n = len(ch.names())
		r.result(&protocol.NewProxyResp{Name: "web", Code: protocol.CodeProxyExists, Error: "held"})
		r.close()
		r.close()
		time.Sleep(time.Minute)
		synctest.Wait()
		if len(ch.names()) != n {
			t.Fatal("a retry was sent after close")
		}
		if r.result(&protocol.NewProxyResp{Name: "nope"}) {
			t.Fatal("an answer for an unknown proxy was taken")
		}
	})
}
