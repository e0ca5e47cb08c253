package server

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"container/list"

	"github.com/hopproxy/hop/pkg/dgrampool"
	"github.com/hopproxy/hop/pkg/protocol"
)

// fakeClient stands for hopc behind a udp relay: every flow's stream is one
// end of a pipe; the client end answers the sources listed in answer.
type fakeClient struct {
	mu     sync.Mutex
	open   map[netip.AddrPort]net.Conn
	answer map[netip.AddrPort]bool
	block  chan struct{} // while not nil, opening waits for it
	wg     sync.WaitGroup
}

func (fc *fakeClient) opener(src netip.AddrPort) (net.Conn, error) {
	fc.mu.Lock()
	block := fc.block
	fc.mu.Unlock()
	if block != nil {
		<-block
	}
	a, b := net.Pipe()
	fc.mu.Lock()
	fc.open[src] = b
	reply := fc.answer[src]
	fc.mu.Unlock()
	fc.wg.Add(1)
	go func() {
		defer fc.wg.Done()
		defer b.Close()
		for {
			bp, err := dgrampool.ReadDatagram(b)
			if err != nil {
				return
			}
			if reply {
				out, _ := protocol.AppendDatagram(nil, *bp)
				b.Write(out)
			}
			dgrampool.Put(bp)
		}
	}()
	return a, nil
}

// testRelay runs a relay with the given caps on a loopback socket.
func testRelay(t *testing.T, lim udpLimits, fc *fakeClient) (*udpRelay, *net.UDPConn) {
	t.Helper()
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{name: "u", pc: pc, log: slog.New(slog.DiscardHandler)}
	u := &udpRelay{p: p, idle: time.Minute, lim: lim, open: fc.opener, opening: make(chan struct{}, maxOpening),
		flows: map[netip.AddrPort]*flow{}, perIP: map[netip.Addr]*list.List{}}
	p.wg.Add(1)
	go u.serve()
	t.Cleanup(func() { pc.Close(); p.wg.Wait(); fc.wg.Wait() })
	return u, pc
}

func source(t *testing.T, ip string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestUDPFlowCaps: one IP cannot hold more than maxPerIP flows (its own
// oldest goes), the proxy not more than maxFlows, and when full an answered
// flow outlives the unanswered ones.
func TestUDPFlowCaps(t *testing.T) {
	fc := &fakeClient{open: map[netip.AddrPort]net.Conn{}, answer: map[netip.AddrPort]bool{}}
	u, pc := testRelay(t, udpLimits{maxFlows: 8, maxPerIP: 3, unanswered: time.Minute}, fc)
	to := pc.LocalAddr().(*net.UDPAddr)

	legit := source(t, "127.0.0.9")
	fc.mu.Lock()
	fc.answer[legit.LocalAddr().(*net.UDPAddr).AddrPort()] = true
	fc.mu.Unlock()
	legit.WriteToUDP([]byte("hi"), to)
	legit.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := legit.ReadFromUDP(make([]byte, 16)); err != nil {
		t.Fatalf("legit source not answered: %v", err)
	}
	poll(t, 5*time.Second, "the legit flow answered", func() bool { return u.stats().Answered == 1 })

	// Ten ports of one IP: only three flows of it at a time.
	for range 10 {
		source(t, "127.0.0.2").WriteToUDP([]byte("x"), to)
	}
	poll(t, 5*time.Second, "ten datagrams of one IP handled", func() bool { return u.stats().Evicted == 7 })
	if st := u.stats(); st.Flows != 4 {
		t.Fatalf("after one IP's ten ports: %+v, want 3 of it and the legit flow", st)
	}
	// Forty IPs: the proxy keeps at most 8 flows, and the answered one stays.
	for i := range 40 {
		source(t, "127.0.1."+itoa(i+1)).WriteToUDP([]byte("x"), to)
	}
	poll(t, 5*time.Second, "forty sources handled", func() bool { return u.stats().Evicted == 7+40-4 })
	st := u.stats()
	if st.Flows != 8 || st.Answered != 1 {
		t.Fatalf("after the flood: %+v", st)
	}
	legit.WriteToUDP([]byte("still"), to)
	legit.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := legit.ReadFromUDP(make([]byte, 16)); err != nil {
		t.Fatalf("legit flow evicted by the flood: %v", err)
	}
}

// TestUDPReadLoopNeverWaits: while the client takes its time to accept
// streams, the read loop goes on: datagrams of a thousand new sources are
// all taken off the socket and each gets its flow.
func TestUDPReadLoopNeverWaits(t *testing.T) {
	fc := &fakeClient{open: map[netip.AddrPort]net.Conn{}, answer: map[netip.AddrPort]bool{}, block: make(chan struct{})}
	u, pc := testRelay(t, udpLimits{maxFlows: 2000, maxPerIP: 2000, unanswered: time.Minute}, fc)
	var once sync.Once
	unblock := func() { once.Do(func() { close(fc.block) }) }
	t.Cleanup(unblock) // runs before testRelay's
	to := pc.LocalAddr().(*net.UDPAddr)
	for i := range 1000 {
		source(t, "127.0.0.3").WriteToUDP([]byte("x"), to)
		if i%100 == 99 { // let the reader keep up with the kernel buffer
			poll(t, 5*time.Second, "flows made while no stream opens", func() bool { return u.stats().Flows == i+1 })
		}
	}
	poll(t, 5*time.Second, "flows made while no stream opens", func() bool { return u.stats().Flows == 1000 })
	unblock()
}

// TestUDPUnansweredTimeout: a flow never answered ends after the short
// timeout; one answered lives on.
func TestUDPUnansweredTimeout(t *testing.T) {
	fc := &fakeClient{open: map[netip.AddrPort]net.Conn{}, answer: map[netip.AddrPort]bool{}}
	u, pc := testRelay(t, udpLimits{maxFlows: 8, maxPerIP: 8, unanswered: 100 * time.Millisecond}, fc)
	to := pc.LocalAddr().(*net.UDPAddr)
	legit := source(t, "127.0.0.4")
	fc.mu.Lock()
	fc.answer[legit.LocalAddr().(*net.UDPAddr).AddrPort()] = true
	fc.mu.Unlock()
	legit.WriteToUDP([]byte("hi"), to)
	legit.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := legit.ReadFromUDP(make([]byte, 16)); err != nil {
		t.Fatal(err)
	}
	source(t, "127.0.0.5").WriteToUDP([]byte("x"), to)
	poll(t, 5*time.Second, "two flows", func() bool { return u.stats().Flows == 2 })
	poll(t, 5*time.Second, "the unanswered flow ended", func() bool { return u.stats().Flows == 1 })
	if u.stats().Answered != 1 {
		t.Fatalf("%+v: the answered flow went too", u.stats())
	}
}

func itoa(i int) string { return netip.AddrFrom4([4]byte{0, 0, 0, byte(i)}).String()[6:] }
