package nat

import (
	"context"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// lossyConn drops datagrams it sends and receives at random, from a seeded
// source, so that a run is repeatable; drop, if set, decides instead.
type lossyConn struct {
	net.PacketConn
	mu       sync.Mutex
	rng      *rand.Rand
	percent  int
	drop     func(out bool) bool
	in, out  int // datagrams passed
	dropped  int
	sendLast time.Time
}

func newLossy(c net.PacketConn, percent int, seed uint64) *lossyConn {
	return &lossyConn{PacketConn: c, percent: percent, rng: rand.New(rand.NewPCG(seed, 0x10557))}
}

func (l *lossyConn) lose(out bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	var lose bool
	if l.drop != nil {
		lose = l.drop(out)
	} else {
		lose = l.rng.IntN(100) < l.percent
	}
	switch {
	case lose:
		l.dropped++
	case out:
		l.out++
	default:
		l.in++
	}
	return lose
}

func (l *lossyConn) WriteTo(b []byte, a net.Addr) (int, error) {
	if l.lose(true) {
		return len(b), nil
	}
	return l.PacketConn.WriteTo(b, a)
}

func (l *lossyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, a, err := l.PacketConn.ReadFrom(b)
		if err != nil || !l.lose(false) {
			return n, a, err
		}
	}
}

// TestDiscoverLossNeverMisleads runs Discover against a full server
// through 10 % loss each way, many times with different seeds: every
// report is either what the clean loopback gives (no NAT: EIM/EIF) or says
// Unknown; a lost answer never passes for a behaviour. Six sends per test
// (the default is four) keep the one misreading the rule allows, every
// send of the change-IP request lost while its control got through
// (0.19⁶ per run), out of the test's reach; a stalled machine can shift
// which packets the seeded source drops.
func TestDiscoverLossNeverMisleads(t *testing.T) {
	s := startServer(t, true, true)
	opts := Options{Tries: 6, Interval: 20 * time.Millisecond}
	const runs = 40
	conclusive := 0
	for seed := range uint64(runs) {
		conn := newLossy(listen(t, "127.0.0.1:0"), 10, seed)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		r, err := Discover(ctx, conn, s.Addrs()[0], opts)
		cancel()
		if err != nil {
			t.Logf("seed %d: %v", seed, err) // four lost round trips in a row: possible, rare
			continue
		}
		if r.Mapping != Unknown && r.Mapping != EndpointIndependent || r.Filtering != Unknown && r.Filtering != EndpointIndependent {
			t.Errorf("seed %d: %s (%q / %q), probes %v: a lost answer was read as a behaviour", seed, r.Class(), r.MappingNote, r.FilteringNote, r.Probes)
		}
		if r.Class() == "EIM/EIF" {
			conclusive++
		}
		if conn.dropped == 0 && seed < 5 {
			t.Errorf("seed %d: nothing dropped", seed)
		}
	}
	t.Logf("%d of %d runs conclusive through 10 %% loss each way", conclusive, runs)
	if conclusive < runs*9/10 {
		t.Errorf("only %d of %d runs conclusive", conclusive, runs)
	}
}

// TestDiscoverOutage loses every answer while the filtering tests run
// (the link is down for a second), then none: the CHANGE-REQUEST tests get
// no answer, but neither do their controls, so the filtering is Unknown,
// not address-and-port-dependent, although the server's other endpoints
// answer the mapping probes right after (which was all the old rule
// asked for). Without a NAT the truth is endpoint-independent.
func TestDiscoverOutage(t *testing.T) {
	s := startServer(t, true, true)
	conn := newLossy(listen(t, "127.0.0.1:0"), 0, 1)
	const tries = 3
	sends := 0
	conn.drop = func(out bool) bool {
		if out {
			sends++
			return false
		}
		// Sends 2 to 1+4×tries are the two filtering tests with their
		// controls (none answered, so each is sent every time).
		return sends > 1 && sends <= 1+4*tries
	}
	r := discover(t, conn, s.Addrs()[0], Options{Tries: tries, Interval: 20 * time.Millisecond})
	if r.Filtering != Unknown || !strings.Contains(r.FilteringNote, "lost") {
		t.Errorf("filtering %v %q, want Unknown because the controls got no answer either", r.Filtering, r.FilteringNote)
	}
	if r.Mapping != EndpointIndependent {
		t.Errorf("mapping %v %q, want endpoint-independent (the mapping probes came after the outage)", r.Mapping, r.MappingNote)
	}
	if sends != 1+4*tries+3 {
		t.Errorf("%d sends, want %d", sends, 1+4*tries+3)
	}
}

// TestDiscoverFilteredNotLost is the other side of the rule: a NAT that
// drops every answer to a CHANGE-REQUEST (from the server's other
// endpoints) while the controls get through, with 10 % loss on top, is
// address-and-port-dependent filtering (six sends per test make a control
// lost every time, which would make it Unknown, all but impossible).
func TestDiscoverFilteredNotLost(t *testing.T) {
	s := startServer(t, true, true)
	primary := s.Addrs()[0]
	base := listen(t, "127.0.0.1:0")
	conn := &filterConn{lossyConn: newLossy(base, 10, 7), allowed: map[string]bool{}}
	r := discover(t, conn, primary, Options{Tries: 6, Interval: 20 * time.Millisecond})
	if r.Filtering != AddressAndPortDependent || r.FilteringNote != "" {
		t.Errorf("filtering %v %q, want address-and-port-dependent", r.Filtering, r.FilteringNote)
	}
	if r.Mapping != EndpointIndependent {
		t.Errorf("mapping %v %q", r.Mapping, r.MappingNote)
	}
}

// filterConn lets in only datagrams from addresses it has sent to, like
// an address-and-port-dependent filtering NAT, on top of a lossyConn.
type filterConn struct {
	*lossyConn
	mu      sync.Mutex
	allowed map[string]bool
}

func (f *filterConn) WriteTo(b []byte, a net.Addr) (int, error) {
	f.mu.Lock()
	f.allowed[a.String()] = true
	f.mu.Unlock()
	return f.lossyConn.WriteTo(b, a)
}

func (f *filterConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, a, err := f.lossyConn.ReadFrom(b)
		if err != nil {
			return n, a, err
		}
		f.mu.Lock()
		ok := f.allowed[a.String()]
		f.mu.Unlock()
		if ok {
			return n, a, err
		}
	}
}
