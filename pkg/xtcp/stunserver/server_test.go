package stunserver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	lo1 = netip.MustParseAddr("127.0.0.1")
	lo2 = netip.MustParseAddr("127.0.0.2")
)

// freePort returns a UDP port that was free on addr a moment ago.
func freePort(t *testing.T, a netip.Addr) uint16 {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Port()
}

// startServer listens on 127.0.0.1 with an alternate port if altPort, and
// 127.0.0.2 as alternate address if altAddr. It retries when a port picked
// by freePort was taken in between.
func startServer(t *testing.T, altPort, altAddr bool) *Server {
	t.Helper()
	var err error
	for range 5 {
		cfg := Config{Primary: netip.AddrPortFrom(lo1, 0)}
		if altPort {
			cfg.AltPort = freePort(t, lo1)
		}
		if altAddr {
			cfg.AltAddr = lo2
		}
		var s *Server
		if s, err = Listen(cfg); err == nil {
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			return s
		}
	}
	t.Fatalf("Listen: %v", err)
	return nil
}

// client is a UDP socket on 127.0.0.1 that talks to a server.
type client struct {
	t *testing.T
	c *net.UDPConn
}

func newClient(t *testing.T) *client {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c}
}

func (c *client) addr() netip.AddrPort { return c.c.LocalAddr().(*net.UDPAddr).AddrPort() }

func (c *client) send(to netip.AddrPort, b []byte) {
	c.t.Helper()
	if _, err := c.c.WriteToUDPAddrPort(b, to); err != nil {
		c.t.Fatal(err)
	}
}

// recv returns the next datagram and its source, failing after 2 s.
func (c *client) recv() (*stun.Message, netip.AddrPort) {
	c.t.Helper()
	buf := make([]byte, 1500)
	c.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, from, err := c.c.ReadFromUDPAddrPort(buf)
	if err != nil {
		c.t.Fatalf("no response: %v", err)
	}
	m := &stun.Message{Raw: buf[:n]}
	if err := m.Decode(); err != nil {
		c.t.Fatalf("decoding response %x: %v", buf[:n], err)
	}
	return m, from
}

// paddedSize is what hop's client pads its requests to (nat.RequestSize).
const paddedSize = 128

// padTo adds a PADDING attribute that makes the message n bytes long.
type padTo int

func (p padTo) AddTo(m *stun.Message) error {
	if k := (int(p) - headerSize - int(m.Length) - 4) &^ 3; k > 0 {
		m.Add(stun.AttrPadding, make([]byte, k))
	}
	return nil
}

// request builds a Binding request with the given extra setters, padded as
// hop's client pads (before a FINGERPRINT).
func request(t testing.TB, setters ...stun.Setter) *stun.Message {
	t.Helper()
	all := []stun.Setter{stun.TransactionID, stun.BindingRequest}
	padded := false
	for _, s := range setters {
		if s == stun.Fingerprint && !padded {
			all, padded = append(all, padTo(paddedSize)), true
		}
		all = append(all, s)
	}
	if !padded {
		all = append(all, padTo(paddedSize))
	}
	return unpadded(t, all...)
}

// unpadded builds a message from exactly the setters given.
func unpadded(t testing.TB, setters ...stun.Setter) *stun.Message {
	t.Helper()
	m, err := stun.Build(setters...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// changeRequest is a CHANGE-REQUEST attribute.
type changeRequest struct{ ip, port bool }

func (c changeRequest) AddTo(m *stun.Message) error {
	var v [4]byte
	if c.ip {
		v[3] |= changeIPFlag
	}
	if c.port {
		v[3] |= changePortFlag
	}
	m.Add(stun.AttrChangeRequest, v[:])
	return nil
}

func addrOf(t *testing.T, m *stun.Message, typ stun.AttrType) netip.AddrPort {
	t.Helper()
	var a stun.MappedAddress
	if typ == stun.AttrXORMappedAddress {
		var x stun.XORMappedAddress
		if err := x.GetFrom(m); err != nil {
			t.Fatalf("%v: %v", typ, err)
		}
		a = stun.MappedAddress(x)
	} else if err := a.GetFromAs(m, typ); err != nil {
		t.Fatalf("%v: %v", typ, err)
	}
	ip, _ := netip.AddrFromSlice(a.IP)
	return netip.AddrPortFrom(ip.Unmap(), uint16(a.Port))
}

func TestValidate(t *testing.T) {
	p := netip.MustParseAddrPort("192.0.2.1:3478")
	tests := []struct {
		name string
		cfg  Config
		want string // "" for valid
	}{
		{"primary only", Config{Primary: p}, ""},
		{"unspecified primary with alt port", Config{Primary: netip.MustParseAddrPort("0.0.0.0:3478"), AltPort: 3479}, ""},
		{"all four", Config{Primary: p, AltPort: 3479, AltAddr: netip.MustParseAddr("192.0.2.2")}, ""},
		{"ipv6", Config{Primary: netip.MustParseAddrPort("[2001:db8::1]:3478"), AltPort: 3479, AltAddr: netip.MustParseAddr("2001:db8::2")}, ""},
		{"zero", Config{}, "no primary address"},
		{"alt port is primary port", Config{Primary: p, AltPort: 3478}, "alternate port 3478 is the primary port"},
		{"alt addr without alt port", Config{Primary: p, AltAddr: netip.MustParseAddr("192.0.2.2")}, "needs an alternate port"},
		{"alt addr with unspecified primary", Config{Primary: netip.MustParseAddrPort("0.0.0.0:3478"), AltPort: 3479, AltAddr: netip.MustParseAddr("192.0.2.2")}, "needs a concrete primary address"},
		{"unspecified alt addr", Config{Primary: p, AltPort: 3479, AltAddr: netip.MustParseAddr("0.0.0.0")}, "is unspecified"},
		{"alt addr is primary", Config{Primary: p, AltPort: 3479, AltAddr: netip.MustParseAddr("::ffff:192.0.2.1")}, "is the primary address"},
		{"mixed families", Config{Primary: p, AltPort: 3479, AltAddr: netip.MustParseAddr("2001:db8::2")}, "different IP families"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want ErrInvalidConfig containing %q", err, tt.want)
			}
		})
	}
}

func TestAddrs(t *testing.T) {
	s := startServer(t, true, true)
	a := s.Addrs()
	if len(a) != 4 {
		t.Fatalf("Addrs = %v, want 4", a)
	}
	if a[0].Addr() != lo1 || a[1].Addr() != lo1 || a[2].Addr() != lo2 || a[3].Addr() != lo2 ||
		a[0].Port() != a[2].Port() || a[1].Port() != a[3].Port() || a[0].Port() == a[1].Port() || a[0].Port() == 0 {
		t.Fatalf("Addrs = %v, want primary, alt port, alt addr, alt both", a)
	}
	if s.Other() != a[3] {
		t.Fatalf("Other = %v, want %v", s.Other(), a[3])
	}
	if s := startServer(t, false, false); len(s.Addrs()) != 1 || s.Other().IsValid() {
		t.Fatalf("primary only: Addrs = %v, Other = %v", s.Addrs(), s.Other())
	}
	if s := startServer(t, true, false); len(s.Addrs()) != 2 || s.Other() != s.Addrs()[1] {
		t.Fatalf("alt port only: Addrs = %v, Other = %v", s.Addrs(), s.Other())
	}
}

// TestBinding sends a plain Binding request to every socket of a full server.
func TestBinding(t *testing.T) {
	s := startServer(t, true, true)
	c := newClient(t)
	addrs := s.Addrs()
	for i, to := range addrs {
		req := request(t)
		c.send(to, req.Raw)
		resp, from := c.recv()
		if resp.Type != stun.BindingSuccess || resp.TransactionID != req.TransactionID {
			t.Fatalf("to %v: got %v", to, resp)
		}
		if from != to {
			t.Errorf("to %v: response from %v", to, from)
		}
		if got := addrOf(t, resp, stun.AttrXORMappedAddress); got != c.addr() {
			t.Errorf("to %v: XOR-MAPPED-ADDRESS %v, want %v", to, got, c.addr())
		}
		if got := addrOf(t, resp, stun.AttrMappedAddress); got != c.addr() {
			t.Errorf("to %v: MAPPED-ADDRESS %v, want %v", to, got, c.addr())
		}
		if got := addrOf(t, resp, stun.AttrResponseOrigin); got != to {
			t.Errorf("to %v: RESPONSE-ORIGIN %v", to, got)
		}
		if got, want := addrOf(t, resp, stun.AttrOtherAddress), addrs[3-i]; got != want {
			t.Errorf("to %v: OTHER-ADDRESS %v, want %v", to, got, want)
		}
		var sw stun.Software
		if err := sw.GetFrom(resp); err != nil || sw.String() != "hop" {
			t.Errorf("to %v: SOFTWARE %q, %v", to, sw, err)
		}
	}
}

// TestChangeRequest checks that every CHANGE-REQUEST to every socket of a
// full server is answered from the right socket.
func TestChangeRequest(t *testing.T) {
	s := startServer(t, true, true)
	c := newClient(t)
	addrs := s.Addrs()
	for in, to := range addrs {
		for _, ch := range []changeRequest{{}, {port: true}, {ip: true}, {ip: true, port: true}} {
			want := in
			if ch.ip {
				want ^= slotAltAddr
			}
			if ch.port {
				want ^= slotAltPort
			}
			req := request(t, ch)
			c.send(to, req.Raw)
			resp, from := c.recv()
			if resp.Type != stun.BindingSuccess || resp.TransactionID != req.TransactionID {
				t.Fatalf("to %v %+v: got %v", to, ch, resp)
			}
			if from != addrs[want] {
				t.Errorf("to %v %+v: response from %v, want %v", to, ch, from, addrs[want])
			}
			if got := addrOf(t, resp, stun.AttrResponseOrigin); got != addrs[want] {
				t.Errorf("to %v %+v: RESPONSE-ORIGIN %v, want %v", to, ch, got, addrs[want])
			}
			if got := addrOf(t, resp, stun.AttrXORMappedAddress); got != c.addr() {
				t.Errorf("to %v %+v: XOR-MAPPED-ADDRESS %v", to, ch, got)
			}
			// OTHER-ADDRESS is relative to the socket the request went to.
			if got := addrOf(t, resp, stun.AttrOtherAddress); got != addrs[3-in] {
				t.Errorf("to %v %+v: OTHER-ADDRESS %v, want %v", to, ch, got, addrs[3-in])
			}
		}
	}
}

// TestImpossibleChange asks for changes the server cannot make: it must say
// so from the socket the request went to.
func TestImpossibleChange(t *testing.T) {
	tests := []struct {
		name             string
		altPort, altAddr bool
		ch               changeRequest
		reason           string
	}{
		{"ip without alt addr", true, false, changeRequest{ip: true}, "no alternate address"},
		{"ip and port without alt addr", true, false, changeRequest{ip: true, port: true}, "no alternate address"},
		{"port without alt port", false, false, changeRequest{port: true}, "no alternate port"},
		{"ip on primary only", false, false, changeRequest{ip: true}, "no alternate address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, tt.altPort, tt.altAddr)
			c := newClient(t)
			to := s.Addrs()[0]
			req := request(t, tt.ch)
			c.send(to, req.Raw)
			resp, from := c.recv()
			if from != to {
				t.Errorf("error response from %v, want %v", from, to)
			}
			if resp.Type != stun.BindingError || resp.TransactionID != req.TransactionID {
				t.Fatalf("got %v, want a Binding error response", resp)
			}
			var ec stun.ErrorCodeAttribute
			if err := ec.GetFrom(resp); err != nil || ec.Code != 420 || !strings.Contains(string(ec.Reason), tt.reason) {
				t.Errorf("ERROR-CODE %v (%v), want 420 %q", ec, err, tt.reason)
			}
			var ua stun.UnknownAttributes
			if err := ua.GetFrom(resp); err != nil || len(ua) != 1 || ua[0] != stun.AttrChangeRequest {
				t.Errorf("UNKNOWN-ATTRIBUTES %v (%v), want CHANGE-REQUEST", ua, err)
			}
		})
	}
}

func TestNoOtherAddress(t *testing.T) {
	s := startServer(t, false, false)
	c := newClient(t)
	c.send(s.Addrs()[0], request(t).Raw)
	resp, _ := c.recv()
	if resp.Type != stun.BindingSuccess || resp.Contains(stun.AttrOtherAddress) {
		t.Fatalf("got %v, want success without OTHER-ADDRESS", resp)
	}
}

// TestErrorResponses covers requests that get an error rather than silence.
func TestErrorResponses(t *testing.T) {
	s := startServer(t, true, true)
	c := newClient(t)
	tests := []struct {
		name    string
		setters []stun.Setter
		code    stun.ErrorCode
		unknown stun.UnknownAttributes
	}{
		{"short CHANGE-REQUEST", []stun.Setter{rawAttr{stun.AttrChangeRequest, []byte{0, 0, 6}}}, 400, nil},
		{"two CHANGE-REQUESTs", []stun.Setter{changeRequest{port: true}, changeRequest{ip: true}}, 400, nil},
		{"RESPONSE-PORT and a private one", []stun.Setter{
			rawAttr{stun.AttrResponsePort, []byte{0x12, 0x34, 0, 0}}, rawAttr{0x7777, nil}, rawAttr{0x7777, nil},
		}, 420, stun.UnknownAttributes{stun.AttrResponsePort, 0x7777}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := request(t, tt.setters...)
			c.send(s.Addrs()[0], req.Raw)
			resp, from := c.recv()
			if from != s.Addrs()[0] || resp.Type != stun.BindingError || resp.TransactionID != req.TransactionID {
				t.Fatalf("got %v from %v", resp, from)
			}
			var ec stun.ErrorCodeAttribute
			if err := ec.GetFrom(resp); err != nil || ec.Code != tt.code {
				t.Errorf("ERROR-CODE %v (%v), want %d", ec, err, tt.code)
			}
			var ua stun.UnknownAttributes
			ua.GetFrom(resp)
			if len(ua) != len(tt.unknown) || (len(ua) > 0 && !bytes.Equal(attrBytes(ua), attrBytes(tt.unknown))) {
				t.Errorf("UNKNOWN-ATTRIBUTES %v, want %v", ua, tt.unknown)
			}
		})
	}
}

func attrBytes(a stun.UnknownAttributes) []byte {
	var b []byte
	for _, t := range a {
		b = binary.BigEndian.AppendUint16(b, uint16(t))
	}
	return b
}

// rawAttr adds an attribute as given.
type rawAttr struct {
	typ stun.AttrType
	v   []byte
}

func (r rawAttr) AddTo(m *stun.Message) error { m.Add(r.typ, r.v); return nil }

// malformed returns datagrams the server must not answer.
func malformed(t testing.TB) map[string][]byte {
	valid := request(t).Raw
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(valid)) }
	badFP := request(t, stun.Fingerprint).Raw
	badFP[len(badFP)-1] ^= 1
	withSW := request(t, stun.NewSoftware("x")).Raw
	overflow := bytes.Clone(withSW)
	overflow[headerSize+3] = 252 // SOFTWARE longer than the message
	return map[string][]byte{
		"empty":            {},
		"short header":     valid[:19],
		"text":             []byte("GET / HTTP/1.1\r\n\r\n"),
		"top bits set":     mod(func(b []byte) []byte { b[0] |= 0x80; return b }),
		"bad cookie":       mod(func(b []byte) []byte { b[4] ^= 1; return b }),
		"length too big":   mod(func(b []byte) []byte { b[3] = 4; return b }),
		"trailing bytes":   append(bytes.Clone(valid), 0, 0, 0, 0),
		"unaligned length": append(mod(func(b []byte) []byte { b[3] = 2; return b }), 0, 0),
		"truncated attr":   withSW[:len(withSW)-4],
		"attr overflows":   overflow,
		"success response": request(t, stun.BindingSuccess).Raw,
		"error response":   request(t, stun.BindingError).Raw,
		"indication":       request(t, stun.NewType(stun.MethodBinding, stun.ClassIndication)).Raw,
		"allocate request": request(t, stun.NewType(stun.MethodAllocate, stun.ClassRequest)).Raw,
		"bad fingerprint":  badFP,
		"too long":         request(t, stun.NewSoftware(strings.Repeat("x", 700)), stun.NewSoftware(strings.Repeat("y", 700))).Raw,
		"unpadded":         unpadded(t, stun.TransactionID, stun.BindingRequest).Raw,
	}
}

// TestMalformedIgnored sends every malformed datagram, then a valid request:
// the first thing to come back must be the answer to the valid one.
func TestMalformedIgnored(t *testing.T) {
	s := startServer(t, true, true)
	c := newClient(t)
	for _, b := range malformed(t) {
		for _, to := range s.Addrs() {
			c.send(to, b)
		}
	}
	good := request(t, stun.Fingerprint)
	c.send(s.Addrs()[0], good.Raw)
	resp, _ := c.recv()
	if resp.TransactionID != good.TransactionID || resp.Type != stun.BindingSuccess {
		t.Fatalf("first response %v is not the answer to the valid request", resp)
	}
	c.c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, from, err := c.c.ReadFromUDPAddrPort(make([]byte, 1500)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("unexpected datagram of %d bytes from %v (%v)", n, from, err)
	}
	select {
	case <-s.Done():
		t.Fatalf("server stopped: %v", s.Err())
	default:
	}
}

func TestHandlerDropsBadSources(t *testing.T) {
	h := &handler{software: software}
	h.addrs[slotPrimary] = netip.MustParseAddrPort("192.0.2.1:3478")
	req := request(t).Raw
	for _, from := range []netip.AddrPort{{}, netip.MustParseAddrPort("198.51.100.1:0"), netip.MustParseAddrPort("0.0.0.0:1234")} {
		if _, _, _, ok := h.handle(req, from, slotPrimary); ok {
			t.Errorf("answered a request from %v", from)
		}
	}
}

// TestResponseSize checks the amplification bound of the package doc.
func TestResponseSize(t *testing.T) {
	for _, tt := range []struct {
		name    string
		primary string
		alt     string
		from    string
		max     int
	}{
		{"ipv4", "192.0.2.1:3478", "192.0.2.2", "198.51.100.1:40000", 100},
		{"ipv6", "[2001:db8::1]:3478", "2001:db8::2", "[2001:db8:1::1]:40000", 150},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := netip.MustParseAddrPort(tt.primary)
			a := netip.MustParseAddr(tt.alt)
			h := &handler{software: software}
			h.addrs = [numSlots]netip.AddrPort{p, netip.AddrPortFrom(p.Addr(), 3479), netip.AddrPortFrom(a, p.Port()), netip.AddrPortFrom(a, 3479)}
			from := netip.MustParseAddrPort(tt.from)
			unknown := make([]stun.Setter, 0, 20)
			for i := range 20 {
				unknown = append(unknown, rawAttr{stun.AttrType(0x7000 + i), nil})
			}
			for name, req := range map[string][]byte{
				"plain":   request(t).Raw,
				"change":  request(t, changeRequest{ip: true, port: true}).Raw,
				"unknown": request(t, unknown...).Raw,
				"bad":     request(t, rawAttr{stun.AttrChangeRequest, nil}).Raw,
			} {
				resp, _, _, ok := h.handle(req, from, slotPrimary)
				if !ok || len(resp) > tt.max || len(resp) > len(req) {
					t.Errorf("%s: ok=%v, %d bytes for a request of %d, want at most %d and no more than the request", name, ok, len(resp), len(req), tt.max)
				}
			}
		})
	}
}

func TestCloseTwice(t *testing.T) {
	s, err := Listen(Config{Primary: netip.AddrPortFrom(lo1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	if !errors.Is(s.Err(), ErrClosed) {
		t.Fatalf("Err = %v, want ErrClosed", s.Err())
	}
}

func TestListenFailureClosesSockets(t *testing.T) {
	busy, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.LocalAddr().(*net.UDPAddr).AddrPort().Port()
	// Primary on 127.0.0.2 takes the port, the alt port is busy.
	primary := netip.AddrPortFrom(lo2, 0)
	_, err = Listen(Config{Primary: primary, AltPort: port, AltAddr: lo1})
	if err == nil {
		t.Fatal("Listen succeeded with a busy port")
	}
	// The primary socket must have been closed: the whole config binds again
	// once the port is free.
	busy.Close()
	s, err := Listen(Config{Primary: primary, AltPort: port, AltAddr: lo1})
	if err != nil {
		t.Fatalf("Listen after freeing the port: %v", err)
	}
	s.Close()
}

// TestUnspecifiedPrimary checks what a server bound to 0.0.0.0 reports: no
// RESPONSE-ORIGIN, and OTHER-ADDRESS with the unspecified address.
func TestUnspecifiedPrimary(t *testing.T) {
	var s *Server
	var err error
	for range 5 {
		s, err = Listen(Config{Primary: netip.MustParseAddrPort("0.0.0.0:0"), AltPort: freePort(t, netip.IPv4Unspecified())})
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := newClient(t)
	for i, a := range s.Addrs() {
		to := netip.AddrPortFrom(lo1, a.Port())
		c.send(to, request(t, changeRequest{port: true}).Raw)
		resp, from := c.recv()
		other := s.Addrs()[1-i]
		if from.Port() != other.Port() {
			t.Errorf("change port to %v: answered from %v", to, from)
		}
		if resp.Contains(stun.AttrResponseOrigin) {
			t.Errorf("RESPONSE-ORIGIN present: %v", resp)
		}
		if got := addrOf(t, resp, stun.AttrOtherAddress); got != netip.AddrPortFrom(netip.IPv4Unspecified(), other.Port()) {
			t.Errorf("OTHER-ADDRESS %v for a response from %v", got, other)
		}
	}
}
