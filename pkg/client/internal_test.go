package client

import (
	"strings"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/protocol"
)

func TestBirthdayRoles(t *testing.T) {
	for _, tt := range []struct {
		class   string
		mapping string
		hard    bool
	}{
		{"EIM/APDF", "EIM", false}, {"none", "EIM", false}, {"APDM/APDF", "APDM", true},
		{"ADM/?F", "ADM", true}, {"?M/?F", "?M", false}, {"unknown", "unknown", false},
	} {
		if got := mappingOf(tt.class); got != tt.mapping || hardMapping(tt.class) != tt.hard {
			t.Errorf("%s: mapping %s hard %v", tt.class, got, hardMapping(tt.class))
		}
	}
}

func TestCheckVisit(t *testing.T) {
	c := &Client{}
	p := config.ProxyConfig{Name: "ssh", SecretKey: "right-secret"}
	a := newVisitAuth("right-secret", "ssh", "laptop")
	if err := c.checkVisit(a, p, "laptop"); err != nil {
		t.Fatalf("valid proof refused: %v", err)
	}
	if err := c.checkVisit(a, p, "laptop"); err == nil || !strings.Contains(err.Error(), "replayed") {
		t.Fatalf("replay: %v", err)
	}
	if err := c.checkVisit(newVisitAuth("wrong-secret", "ssh", "laptop"), p, "laptop"); err != ErrVisitAuth {
		t.Fatalf("wrong secret: %v", err)
	}
	if err := c.checkVisit(newVisitAuth("right-secret", "ssh", "laptop"), p, "mallory"); err == nil {
		t.Fatal("a proof for another client ID accepted")
	}
	old := newVisitAuth("right-secret", "ssh", "laptop")
	old.UnixMs = time.Now().Add(-2 * visitSkew).UnixMilli()
	old.MAC = visitMAC("right-secret", "ssh", "laptop", old.UnixMs, old.Nonce)
	if err := c.checkVisit(old, p, "laptop"); err == nil || !strings.Contains(err.Error(), "clocks") {
		t.Fatalf("stale proof: %v", err)
	}
}

func TestWaitsDeliverOnlyToTheirAttempt(t *testing.T) {
	w := p2pWaits{answers: map[string]chan *protocol.P2PAnswer{}, gos: map[string]chan *protocol.P2PGo{}}
	ch, done := w.expectAnswer("a")
	w.deliver(&protocol.P2PAnswer{ID: "b"})
	w.deliver(&protocol.P2PAnswer{ID: "a", DelayMs: 5})
	if got := <-ch; got.DelayMs != 5 {
		t.Fatalf("got %+v", got)
	}
	done()
	w.deliver(&protocol.P2PAnswer{ID: "a"}) // after done: dropped, no block
}
