package admit

import (
	"errors"
	"net"
	"sync"
	"testing"
)

func tcp(ip string, port int) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: port} }

func TestGateCaps(t *testing.T) {
	g, err := New(Limits{Max: 4, PerIP: 2})
	if err != nil {
		t.Fatal(err)
	}
	var leaves []func()
	for port := range 2 {
		l, err := g.Enter(tcp("127.0.0.1", 1000+port))
		if err != nil {
			t.Fatalf("handshake %d from one IP: %v", port, err)
		}
		leaves = append(leaves, l)
	}
	if _, err := g.Enter(tcp("127.0.0.1", 2000)); !errors.Is(err, ErrTooManyFromIP) {
		t.Fatalf("third handshake from one IP: %v, want ErrTooManyFromIP", err)
	}
	// The IPv4-mapped form is the same host.
	if _, err := g.Enter(tcp("::ffff:127.0.0.1", 2001)); !errors.Is(err, ErrTooManyFromIP) {
		t.Fatalf("mapped form of the same IP: %v, want ErrTooManyFromIP", err)
	}
	for _, ip := range []string{"127.0.0.2", "127.0.0.3"} {
		l, err := g.Enter(tcp(ip, 1))
		if err != nil {
			t.Fatalf("handshake from %s: %v", ip, err)
		}
		leaves = append(leaves, l)
	}
	if _, err := g.Enter(tcp("127.0.0.4", 1)); !errors.Is(err, ErrTooMany) {
		t.Fatalf("fifth handshake: %v, want ErrTooMany", err)
	}
	st := g.Stats()
	if st.InProgress != 4 || st.SourceIPs != 3 || st.RefusedPerIP != 2 || st.RefusedTotal != 1 {
		t.Fatalf("stats %+v", st)
	}
	leaves[0]()
	leaves[0]() // idempotent: must not free a second slot
	if l, err := g.Enter(tcp("127.0.0.1", 3000)); err != nil {
		t.Fatalf("after one left: %v", err)
	} else {
		leaves = append(leaves, l)
	}
	if _, err := g.Enter(tcp("127.0.0.5", 1)); !errors.Is(err, ErrTooMany) {
		t.Fatalf("a double leave freed a slot: %v", err)
	}
	for _, l := range leaves {
		l()
	}
	if st := g.Stats(); st.InProgress != 0 || st.SourceIPs != 0 {
		t.Fatalf("after all left: %+v (the per-IP map must not keep empty entries)", st)
	}
}

// TestGateConcurrent: under concurrent Enter from many goroutines the caps
// hold at every moment.
func TestGateConcurrent(t *testing.T) {
	g, _ := New(Limits{Max: 16, PerIP: 4})
	var wg sync.WaitGroup
	var mu sync.Mutex
	inside, peak := 0, 0
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := g.Enter(tcp("127.0.0."+string(rune('1'+i%8)), i))
			if err != nil {
				return
			}
			mu.Lock()
			inside++
			peak = max(peak, inside)
			mu.Unlock()
			mu.Lock()
			inside--
			mu.Unlock()
			l()
		}()
	}
	wg.Wait()
	if peak > 16 {
		t.Fatalf("peak %d over the cap", peak)
	}
	if st := g.Stats(); st.InProgress != 0 {
		t.Fatalf("%+v", st)
	}
}

func TestLimitsValidate(t *testing.T) {
	for _, l := range []Limits{{0, 0}, {4, 0}, {-1, 1}} {
		if err := l.Validate(); !errors.Is(err, ErrInvalidLimits) {
			t.Errorf("%+v: %v", l, err)
		}
	}
	if err := (Limits{128, 8}).Validate(); err != nil {
		t.Fatal(err)
	}
}
