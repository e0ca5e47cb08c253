package client

import (
	"testing"

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
