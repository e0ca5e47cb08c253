package client

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/idletimeout"
	"github.com/hopproxy/hop/pkg/xtcp"
	"github.com/hopproxy/hop/pkg/xtcp/nat"
)

func TestClampInterval(t *testing.T) {
	for _, tt := range []struct{ iv, timeout, want time.Duration }{
		{2 * time.Second, 30 * time.Second, 2 * time.Second},
		{40 * time.Second, 30 * time.Second, 15 * time.Second},
		{100 * time.Millisecond, 30 * time.Second, time.Second},
		{5 * time.Second, 6 * time.Second, 3 * time.Second},
		{5 * time.Second, time.Second, 500 * time.Millisecond}, // a tiny timeout (owner tests): below it
	} {
		if got := clampInterval(tt.iv, tt.timeout); got != tt.want {
			t.Errorf("clampInterval(%v, %v) = %v, want %v", tt.iv, tt.timeout, got, tt.want)
		}
	}
}

// syncBuf is a log sink safe for several goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fakeNAT is a prober for a NAT that forgets idle UDP mappings after T,
// answering at once (the learner does not care how long a probe takes).
func fakeNAT(T time.Duration) idletimeout.Prober {
	return func(ctx context.Context, silence time.Duration) (bool, error) { return silence < T, ctx.Err() }
}

func startKeepalive(t *testing.T, probe idletimeout.Prober) (*p2pKeepalive, *syncBuf) {
	t.Helper()
	logs := &syncBuf{}
	p := &p2pKeepalive{probe: probe}
	ctx, cancel := context.WithCancel(t.Context())
	p.init(ctx, slog.New(slog.NewTextHandler(logs, nil)), nil, 30*time.Second)
	t.Cleanup(func() { cancel(); p.stop() })
	return p, logs
}

func newTestLink(t *testing.T) *xtcp.Link {
	t.Helper()
	l, err := xtcp.NewLink(xtcp.LinkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func waitKA(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 30s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestP2PKeepaliveLearns: a registered link starts at 2s and then gets
// 45% of the NAT's timeout (within the learner's precision), clamped to
// half its keepalive timeout; the change is logged once.
func TestP2PKeepaliveLearns(t *testing.T) {
	for _, tt := range []struct {
		nat      time.Duration
		lo, hi   time.Duration // the interval expected
		forgets  bool          // the log names a timeout
		converge bool
	}{
		{20 * time.Second, 7 * time.Second, 9 * time.Second, true, true},
		{2 * time.Hour, 15 * time.Second, 15 * time.Second, false, true}, // beyond the probing cap: half the 30s timeout
	} {
		t.Run(tt.nat.String(), func(t *testing.T) {
			p, logs := startKeepalive(t, fakeNAT(tt.nat))
			link := newTestLink(t)
			unregister := p.register(link, 30*time.Second)
			defer unregister()
			if iv := link.KeepaliveInterval(); iv != 2*time.Second && (iv < tt.lo || iv > tt.hi) {
				t.Errorf("first interval %v, want the 2s start (or the learnt one)", iv)
			}
			waitKA(t, "converged", func() bool {
				st, ok := p.status(30 * time.Second)
				return ok && st.Learnt && p.converged()
			})
			if iv := link.KeepaliveInterval(); iv < tt.lo || iv > tt.hi {
				t.Errorf("learnt interval %v, want %v..%v", iv, tt.lo, tt.hi)
			}
			out := logs.String()
			want := "P2P keepalive interval learned: path keeps idle UDP at least "
			if tt.forgets {
				want = "P2P keepalive interval learned: path forgets idle UDP after ~"
			}
			if !strings.Contains(out, want) || !strings.Contains(out, "using "+secs(link.KeepaliveInterval())) {
				t.Errorf("log %q lacks %q ... using %s", out, want, secs(link.KeepaliveInterval()))
			}
			// A link registered later gets the learnt interval at once.
			later := newTestLink(t)
			defer p.register(later, 30*time.Second)()
			if got, want := later.KeepaliveInterval(), link.KeepaliveInterval(); got != want {
				t.Errorf("later link %v, want %v", got, want)
			}
		})
	}
}

// TestP2PKeepaliveFallback: a server without delayed answers stops the
// learner; links use the default interval.
func TestP2PKeepaliveFallback(t *testing.T) {
	p, logs := startKeepalive(t, func(context.Context, time.Duration) (bool, error) { return false, nat.ErrNoDelaySupport })
	link := newTestLink(t)
	defer p.register(link, 30*time.Second)()
	waitKA(t, "the default interval", func() bool { return link.KeepaliveInterval() == 10*time.Second })
	if st, ok := p.status(30 * time.Second); !ok || !st.Fallback || st.Interval != 10*time.Second {
		t.Errorf("status %+v, %v; want the fallback at 10s", st, ok)
	}
	if !strings.Contains(logs.String(), "cannot learn the UDP mapping lifetime") {
		t.Errorf("no warning in %q", logs.String())
	}
}

// TestKeepaliveStatus: hopc status shows the fixed interval, or auto's
// state.
func TestKeepaliveStatus(t *testing.T) {
	c := &Client{}
	fixed := config.DefaultVisitor(config.ProxyXTCP)
	auto := fixed
	auto.KeepaliveInterval = config.AutoDuration
	if got := c.keepaliveStatus(fixed); got != "10s" {
		t.Errorf("fixed: %q", got)
	}
	if got := c.keepaliveStatus(config.DefaultVisitor(config.ProxySTCP)); got != "" {
		t.Errorf("stcp: %q", got)
	}
	if got := c.keepaliveStatus(auto); !strings.HasPrefix(got, "auto (learns") {
		t.Errorf("auto before any path: %q", got)
	}
	ctx, cancel := context.WithCancel(t.Context())
	c.p2pka.probe = fakeNAT(20 * time.Second)
	c.p2pka.init(ctx, slog.New(slog.DiscardHandler), nil, 30*time.Second)
	defer func() { cancel(); c.p2pka.stop() }()
	defer c.p2pka.register(newTestLink(t), 30*time.Second)()
	waitKA(t, "converged", c.p2pka.converged)
	if got := c.keepaliveStatus(auto); !strings.HasPrefix(got, "auto ") || !strings.Contains(got, "(NAT forgets idle UDP after ~") {
		t.Errorf("auto after learning: %q", got)
	}
}
