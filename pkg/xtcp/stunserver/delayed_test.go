package stunserver

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

// respondAfter is a RESPOND-AFTER attribute asking for d.
type respondAfter time.Duration

func (r respondAfter) AddTo(m *stun.Message) error {
	m.Add(AttrRespondAfter, binary.BigEndian.AppendUint32(nil, uint32(time.Duration(r)/time.Millisecond)))
	return nil
}

// listen starts a server on 127.0.0.1 with cfg's caps.
func listen(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Primary = netip.AddrPortFrom(lo1, 0)
	s, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// waitDelayed polls s.Delayed until it is n.
func waitDelayed(t *testing.T, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.Delayed() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d delayed answers waiting, want %d", s.Delayed(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRespondAfter(t *testing.T) {
	s := listen(t, Config{})
	c := newClient(t)
	const delay = 300 * time.Millisecond
	req := request(t, respondAfter(delay))
	sent := time.Now()
	c.send(s.Addrs()[0], req.Raw)
	waitDelayed(t, s, 1)
	resp, from := c.recv()
	if waited := time.Since(sent); waited < delay {
		t.Errorf("answer after %v, asked for %v", waited, delay)
	}
	if from != s.Addrs()[0] || resp.Type != stun.BindingSuccess || resp.TransactionID != req.TransactionID {
		t.Fatalf("got %v from %v", resp, from)
	}
	if got := addrOf(t, resp, stun.AttrXORMappedAddress); got != c.addr() {
		t.Errorf("XOR-MAPPED-ADDRESS %v, want %v", got, c.addr())
	}
	if len(resp.Raw) > len(req.Raw) {
		t.Errorf("answer of %d bytes to a request of %d", len(resp.Raw), len(req.Raw))
	}
	waitDelayed(t, s, 0)
	// One answer per request: nothing else comes.
	c.c.SetReadDeadline(time.Now().Add(2 * delay))
	if n, _, err := c.c.ReadFromUDPAddrPort(make([]byte, 1500)); err == nil {
		t.Fatalf("a second datagram of %d bytes", n)
	}
}

func TestRespondAfterCaps(t *testing.T) {
	tests := []struct {
		name     string
		cfg      Config
		accepted int // of 4 requests from one IP
	}{
		{"per IP", Config{MaxDelayedPerIP: 2}, 2},
		{"total", Config{MaxDelayed: 3, MaxDelayedPerIP: 100}, 3},
		{"defaults", Config{}, 4},
		{"disabled", Config{MaxDelayed: -1}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := listen(t, tt.cfg)
			c := newClient(t)
			for i := range 4 {
				req := request(t, respondAfter(MaxRespondAfter))
				c.send(s.Addrs()[0], req.Raw)
				if i < tt.accepted {
					waitDelayed(t, s, i+1)
					continue
				}
				resp, _ := c.recv()
				var ec stun.ErrorCodeAttribute
				if resp.Type != stun.BindingError || resp.TransactionID != req.TransactionID || ec.GetFrom(resp) != nil || ec.Code != 486 {
					t.Fatalf("request %d over the cap: got %v (%v), want error 486", i, resp, ec)
				}
			}
			if got := s.Delayed(); got != tt.accepted {
				t.Errorf("%d waiting, want %d", got, tt.accepted)
			}
			// Close drops them; goleak (TestMain) checks their timers'
			// goroutines are gone.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if got := s.Delayed(); got != 0 {
				t.Errorf("%d waiting after Close", got)
			}
		})
	}
}

func TestRespondAfterMalformed(t *testing.T) {
	s := listen(t, Config{})
	c := newClient(t)
	ms := func(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }
	for name, setters := range map[string][]stun.Setter{
		"zero":      {rawAttr{AttrRespondAfter, ms(0)}},
		"too long":  {rawAttr{AttrRespondAfter, ms(uint32(MaxRespondAfter/time.Millisecond) + 1)}},
		"huge":      {rawAttr{AttrRespondAfter, ms(^uint32(0))}},
		"3 bytes":   {rawAttr{AttrRespondAfter, []byte{0, 0, 1}}},
		"8 bytes":   {rawAttr{AttrRespondAfter, append(ms(0), ms(100)...)}},
		"two of it": {respondAfter(time.Second), respondAfter(time.Second)},
	} {
		t.Run(name, func(t *testing.T) {
			req := request(t, setters...)
			c.send(s.Addrs()[0], req.Raw)
			resp, _ := c.recv()
			var ec stun.ErrorCodeAttribute
			if resp.Type != stun.BindingError || resp.TransactionID != req.TransactionID || ec.GetFrom(resp) != nil || ec.Code != 400 {
				t.Fatalf("got %v (%v), want error 400", resp, ec)
			}
		})
	}
	if got := s.Delayed(); got != 0 {
		t.Errorf("%d delayed answers for malformed requests", got)
	}
}

func TestStreamRespondAfterRefused(t *testing.T) {
	s := startServer(t, false, false)
	req := request(t, respondAfter(time.Second))
	resp, _, _ := streamExchange(t, s, req.Raw)
	m := &stun.Message{Raw: resp}
	var ec stun.ErrorCodeAttribute
	if err := m.Decode(); err != nil || m.Type != stun.BindingError || ec.GetFrom(m) != nil || ec.Code != 400 {
		t.Fatalf("got %v (%v), want error 400", m, err)
	}
}

func TestDecodeRespondAfter(t *testing.T) {
	for _, tt := range []struct {
		v    []byte
		want time.Duration
		ok   bool
	}{
		{[]byte{0, 0, 0, 1}, time.Millisecond, true},
		{[]byte{0, 9, 0x27, 0xc0}, MaxRespondAfter, true},
		{[]byte{0, 9, 0x27, 0xc1}, 0, false},
		{[]byte{0, 0, 0, 0}, 0, false},
		{nil, 0, false},
		{[]byte{0, 0, 0, 1, 0}, 0, false},
	} {
		if got, ok := decodeRespondAfter(tt.v); got != tt.want || ok != tt.ok {
			t.Errorf("decodeRespondAfter(%x) = %v, %v; want %v, %v", tt.v, got, ok, tt.want, tt.ok)
		}
	}
}
