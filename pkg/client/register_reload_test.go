package client

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hopproxy/hop/pkg/protocol"
)

// wire records every control message a registrar sends, as "new:NAME" or
// "close:NAME".
type wire struct {
	mu  sync.Mutex
	log []string
}

func (w *wire) Send(_ context.Context, m protocol.Message) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch m := m.(type) {
	case *protocol.NewProxy:
		w.log = append(w.log, "new:"+m.Name)
	case *protocol.CloseProxy:
		w.log = append(w.log, "close:"+m.Name)
	}
	return nil
}

func (w *wire) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.log, ",")
}

// TestRegistrarReload: a proxy added before start goes with the others,
// one added after is sent at once; a removed one is closed at the server,
// its pending retry cancelled, and a late answer for it dropped quietly.
func TestRegistrarReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &wire{}
		ps := testProxies() // web, dns
		extra := ps[0]
		extra.Name = "extra"
		r := newRegistrar(w, slog.New(slog.DiscardHandler), ps[:1], time.Second, 8*time.Second, nil)
		defer r.close()
		r.add(ps[1])
		if w.String() != "" {
			t.Fatalf("sent before start: %s", w)
		}
		if err := r.start(context.Background()); err != nil {
			t.Fatal(err)
		}
		r.add(extra)
		r.add(extra) // already there: nothing sent
		if got := w.String(); got != "new:web,new:dns,new:extra" {
			t.Fatalf("sent %s", got)
		}
		r.result(&protocol.NewProxyResp{Name: "dns", Code: protocol.CodePortInUse, Error: "in use"})
		if !r.pending("dns") {
			t.Fatal("no retry pending")
		}
		r.remove("dns")
		r.remove("dns") // gone already: nothing sent
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := w.String(); got != "new:web,new:dns,new:extra,close:dns" {
			t.Fatalf("sent %s (a retry after remove?)", got)
		}
		if !r.result(&protocol.NewProxyResp{Name: "dns", RemotePort: 6053}) {
			t.Fatal("a late answer for a removed proxy is reported as unknown")
		}
		r.add(ps[1]) // back again
		if got := w.String(); !strings.HasSuffix(got, ",close:dns,new:dns") {
			t.Fatalf("sent %s", got)
		}
	})
}
