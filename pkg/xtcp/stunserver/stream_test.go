package stunserver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

// streamExchange connects to a TCP listener whose accepted connection is
// served by s.ServeStream, writes req and returns what came back before
// the server closed, and the ServeStream error.
func streamExchange(t *testing.T, s *Server, req []byte) (resp []byte, local netip.AddrPort, serveErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		errc <- s.ServeStream(c, c, time.Now().Add(5*time.Second))
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite() // a short request ends at EOF, not at the deadline
	resp, err = io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		t.Logf("read: %v", err)
	}
	return resp, c.LocalAddr().(*net.TCPAddr).AddrPort(), <-errc
}

func TestIsSTUNFirstByte(t *testing.T) {
	for b, want := range map[byte]bool{0x00: true, 0x01: true, 0x3f: true, 0x16: false, 0x40: false, 0x80: false, 'G': false} {
		if got := IsSTUNFirstByte(b); got != want {
			t.Errorf("IsSTUNFirstByte(%#x) = %v, want %v", b, got, want)
		}
	}
}

// A Binding request over TCP, padded or not, gets XOR-MAPPED-ADDRESS and
// MAPPED-ADDRESS of the connection's source, and no UDP socket attributes.
func TestStreamBinding(t *testing.T) {
	s := startServer(t, true, false)
	for name, req := range map[string]*stun.Message{"padded": request(t), "unpadded": unpadded(t, stun.TransactionID, stun.BindingRequest)} {
		resp, local, err := streamExchange(t, s, req.Raw)
		if err != nil {
			t.Fatalf("%s: ServeStream: %v", name, err)
		}
		m := &stun.Message{Raw: resp}
		if err := m.Decode(); err != nil {
			t.Fatalf("%s: response %x: %v", name, resp, err)
		}
		if m.Type != stun.BindingSuccess || m.TransactionID != req.TransactionID {
			t.Fatalf("%s: got %v, want a success for the request's transaction", name, m)
		}
		if got := addrOf(t, m, stun.AttrXORMappedAddress); got != local {
			t.Errorf("%s: XOR-MAPPED-ADDRESS %v, want %v", name, got, local)
		}
		if got := addrOf(t, m, stun.AttrMappedAddress); got != local {
			t.Errorf("%s: MAPPED-ADDRESS %v, want %v", name, got, local)
		}
		if m.Contains(stun.AttrOtherAddress) || m.Contains(stun.AttrResponseOrigin) {
			t.Errorf("%s: response names UDP sockets: %v", name, m)
		}
	}
}

func TestStreamChangeRequestRefused(t *testing.T) {
	s := startServer(t, true, false)
	resp, _, err := streamExchange(t, s, request(t, changeRequest{port: true}).Raw)
	if err != nil {
		t.Fatal(err)
	}
	m := &stun.Message{Raw: resp}
	if err := m.Decode(); err != nil {
		t.Fatal(err)
	}
	var code stun.ErrorCodeAttribute
	if m.Type != stun.BindingError || code.GetFrom(m) != nil || code.Code != 420 {
		t.Fatalf("got %v (%v), want a 420", m, code)
	}
}

// Whatever is not one Binding request gets nothing back and a clear error;
// a length over the bound is refused from the header alone.
func TestStreamMalformed(t *testing.T) {
	s := startServer(t, false, false)
	for name, b := range malformed(t) {
		if name == "unpadded" || name == "trailing bytes" || name == "length too big" {
			continue // fine over TCP; trailing bytes are never read; a longer length waits for more
		}
		resp, _, err := streamExchange(t, s, b)
		if len(resp) != 0 {
			t.Errorf("%s: answered %x", name, resp)
		}
		if !errors.Is(err, ErrStreamRequest) {
			t.Errorf("%s: err %v, want ErrStreamRequest", name, err)
		}
	}
	huge := bytes.Clone(request(t).Raw[:headerSize])
	binary.BigEndian.PutUint16(huge[2:4], 0xfffc)
	if _, _, err := streamExchange(t, s, huge); !errors.Is(err, ErrStreamRequest) {
		t.Errorf("huge length: %v, want ErrStreamRequest", err)
	}
}

func TestStreamRateLimit(t *testing.T) {
	s := startServer(t, false, false)
	s.limit = newLimiter(1)
	if _, _, err := streamExchange(t, s, request(t).Raw); err != nil {
		t.Fatal(err)
	}
	resp, _, err := streamExchange(t, s, request(t).Raw)
	if !errors.Is(err, ErrRateLimited) || len(resp) != 0 {
		t.Fatalf("second request in the same second: %v, %x; want ErrRateLimited and no answer", err, resp)
	}
}

// FuzzStream feeds arbitrary bytes as a TCP stream to the request reader
// and the stream handler: never a panic, a read of at most the bound, and
// an answer only to a Binding request, for its transaction.
func FuzzStream(f *testing.F) {
	f.Add(request(f).Raw)
	f.Add(unpadded(f, stun.TransactionID, stun.BindingRequest).Raw)
	f.Add(request(f, changeRequest{ip: true}).Raw)
	for _, b := range malformed(f) {
		f.Add(b)
	}
	h := &handler{software: software}
	from := netip.MustParseAddrPort("198.51.100.7:40000")
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		req, err := readStreamRequest(r)
		if err != nil {
			return
		}
		if len(req) > maxRequest || !bytes.Equal(req, in[:len(req)]) {
			t.Fatalf("read %d bytes, not a prefix within %d", len(req), maxRequest)
		}
		if !validRequest(req) {
			return
		}
		resp, _, _, ok := h.answer(req, from, slotPrimary, true)
		if !ok {
			return
		}
		if binary.BigEndian.Uint16(req[0:2]) != 0x0001 {
			t.Fatalf("answered a message that is not a Binding request: %x", req)
		}
		m := &stun.Message{Raw: resp}
		if err := m.Decode(); err != nil || !bytes.Equal(m.TransactionID[:], req[8:20]) || len(resp) > 200 {
			t.Fatalf("response %x (%v) does not answer %x", resp, err, req)
		}
	})
}
