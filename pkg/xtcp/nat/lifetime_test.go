package nat

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/xtcp/stunserver"
	"github.com/pion/stun/v3"
)

func TestLifetimeConstantsMatchServer(t *testing.T) {
	if AttrRespondAfter != stunserver.AttrRespondAfter || MaxLifetimeSilence != stunserver.MaxRespondAfter {
		t.Fatalf("client %#x/%v, server %#x/%v", AttrRespondAfter, MaxLifetimeSilence, stunserver.AttrRespondAfter, stunserver.MaxRespondAfter)
	}
}

// forgetfulNAT relays UDP between clients and server on loopback like a
// NAT with an idle timeout: each client gets an upstream socket (its
// mapping), which is forgotten once no packet crossed it for timeout;
// the server's answers to a forgotten mapping are dropped.
type forgetfulNAT struct {
	t       *testing.T
	timeout time.Duration
	server  netip.AddrPort
	front   *net.UDPConn
	wg      sync.WaitGroup
}

func newForgetfulNAT(t *testing.T, server netip.AddrPort, timeout time.Duration) *forgetfulNAT {
	n := &forgetfulNAT{t: t, timeout: timeout, server: server, front: listen(t, "127.0.0.1:0")}
	n.wg.Add(1)
	go n.run()
	t.Cleanup(func() { n.front.Close(); n.wg.Wait() })
	return n
}

func (n *forgetfulNAT) addr() netip.AddrPort { return n.front.LocalAddr().(*net.UDPAddr).AddrPort() }

func (n *forgetfulNAT) run() {
	defer n.wg.Done()
	buf := make([]byte, 1500)
	for {
		k, from, err := n.front.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		up, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return
		}
		var mu sync.Mutex
		last := time.Now()
		up.WriteToUDPAddrPort(buf[:k], n.server)
		n.wg.Add(1)
		go func() { // answers back while the mapping lives
			defer n.wg.Done()
			defer up.Close()
			b := make([]byte, 1500)
			for {
				up.SetReadDeadline(time.Now().Add(5 * time.Second))
				k, _, err := up.ReadFromUDPAddrPort(b)
				if err != nil {
					return
				}
				mu.Lock()
				alive := time.Since(last) < n.timeout
				last = time.Now()
				mu.Unlock()
				if !alive {
					return // forgotten: the answer is dropped
				}
				n.front.WriteToUDPAddrPort(b[:k], from)
			}
		}()
	}
}

func serverAt(a netip.AddrPort) func(context.Context) (netip.AddrPort, error) {
	return func(context.Context) (netip.AddrPort, error) { return a, nil }
}

func TestLifetimeProbe(t *testing.T) {
	s := startServer(t, false, false)
	nat := newForgetfulNAT(t, s.Addrs()[0], time.Second)
	p := &LifetimeProber{Server: serverAt(nat.addr()), Grace: 500 * time.Millisecond}
	ctx := context.Background()
	if ok, err := p.Probe(ctx, 200*time.Millisecond); err != nil || !ok {
		t.Errorf("200ms behind a 1s NAT: survived %v, %v; want true", ok, err)
	}
	if ok, err := p.Probe(ctx, 2*time.Second); err != nil || ok {
		t.Errorf("2s behind a 1s NAT: survived %v, %v; want false", ok, err)
	}
	// Straight to the server, no NAT: a long silence survives.
	direct := &LifetimeProber{Server: serverAt(s.Addrs()[0]), Grace: 500 * time.Millisecond}
	if ok, err := direct.Probe(ctx, 2*time.Second); err != nil || !ok {
		t.Errorf("2s without a NAT: survived %v, %v; want true", ok, err)
	}
}

func TestLifetimeProbeErrors(t *testing.T) {
	ctx := context.Background()
	refusing, err := stunserver.Listen(stunserver.Config{Primary: netip.AddrPortFrom(lo1, 0), MaxDelayed: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer refusing.Close()
	p := &LifetimeProber{Server: serverAt(refusing.Addrs()[0])}
	if _, err := p.Probe(ctx, time.Second); !errors.Is(err, ErrRefused) {
		t.Errorf("server refusing delayed answers: %v, want ErrRefused", err)
	}

	// A STUN server that answers at once (ignores RESPOND-AFTER).
	plain := listen(t, "127.0.0.1:0")
	go func() {
		b := make([]byte, 1500)
		for {
			n, from, err := plain.ReadFromUDPAddrPort(b)
			if err != nil {
				return
			}
			m := &stun.Message{Raw: b[:n]}
			if m.Decode() != nil {
				continue
			}
			r := stun.MustBuild(stun.BindingSuccess, stun.NewTransactionIDSetter(m.TransactionID),
				&stun.XORMappedAddress{IP: from.Addr().AsSlice(), Port: int(from.Port())})
			plain.WriteToUDPAddrPort(r.Raw, from)
		}
	}()
	p = &LifetimeProber{Server: serverAt(plain.LocalAddr().(*net.UDPAddr).AddrPort())}
	if _, err := p.Probe(ctx, 5*time.Second); !errors.Is(err, ErrNoDelaySupport) {
		t.Errorf("server answering at once: %v, want ErrNoDelaySupport", err)
	}

	for _, d := range []time.Duration{0, time.Microsecond, MaxLifetimeSilence + time.Millisecond} {
		if _, err := p.Probe(ctx, d); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("silence %v: %v, want ErrInvalidOptions", d, err)
		}
	}
	bad := &LifetimeProber{Server: func(context.Context) (netip.AddrPort, error) { return netip.AddrPort{}, errors.New("no DNS") }}
	if _, err := bad.Probe(ctx, time.Second); err == nil {
		t.Error("no server address: no error")
	}

	// ctx ends the wait for a long silence at once.
	s := startServer(t, false, false)
	p = &LifetimeProber{Server: serverAt(s.Addrs()[0])}
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { _, err := p.Probe(cctx, MaxLifetimeSilence); errc <- err }()
	deadline := time.Now().Add(5 * time.Second)
	for s.Delayed() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled probe: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelled probe still waiting")
	}
}
