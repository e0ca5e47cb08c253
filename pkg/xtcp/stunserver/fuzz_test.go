package stunserver

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

// FuzzHandle feeds arbitrary datagrams to the request handler of a server
// with all four sockets: it must never panic, and must answer only Binding
// requests, with a response to the same transaction that is no bigger than
// the documented bound.
func FuzzHandle(f *testing.F) {
	f.Add(request(f).Raw)
	f.Add(request(f, changeRequest{ip: true, port: true}).Raw)
	f.Add(request(f, changeRequest{port: true}, stun.Fingerprint).Raw)
	f.Add(request(f, rawAttr{stun.AttrPadding, make([]byte, 8)}).Raw)
	f.Add(request(f, rawAttr{stun.AttrChangeRequest, []byte{1}}).Raw)
	f.Add(unpadded(f, stun.TransactionID, stun.BindingRequest).Raw)
	f.Add(request(f, respondAfter(30*time.Second)).Raw)
	f.Add(request(f, respondAfter(time.Second), changeRequest{port: true}, stun.Fingerprint).Raw)
	f.Add(request(f, rawAttr{AttrRespondAfter, []byte{0xff, 0xff, 0xff, 0xff}}).Raw)
	f.Add(request(f, rawAttr{AttrRespondAfter, []byte{0, 1}}).Raw)
	for _, b := range malformed(f) {
		f.Add(b)
	}
	h := &handler{software: software}
	h.addrs = [numSlots]netip.AddrPort{
		netip.MustParseAddrPort("192.0.2.1:3478"), netip.MustParseAddrPort("192.0.2.1:3479"),
		netip.MustParseAddrPort("192.0.2.2:3478"), netip.MustParseAddrPort("192.0.2.2:3479"),
	}
	from := netip.MustParseAddrPort("198.51.100.7:40000")
	f.Fuzz(func(t *testing.T, req []byte) {
		orig := bytes.Clone(req)
		for in := range numSlots {
			resp, out, delay, ok := h.handle(req, from, in)
			if !bytes.Equal(req, orig) {
				t.Fatal("handler modified the request")
			}
			if !ok {
				continue
			}
			if len(req) < headerSize || binary.BigEndian.Uint16(req[0:2]) != 0x0001 ||
				binary.BigEndian.Uint32(req[4:8]) != magicCookie {
				t.Fatalf("answered a datagram that is not a Binding request: %x", req)
			}
			if out < 0 || out >= numSlots {
				t.Fatalf("response from slot %d", out)
			}
			m := &stun.Message{Raw: resp}
			if err := m.Decode(); err != nil {
				t.Fatalf("response does not decode: %v", err)
			}
			if m.Type.Method != stun.MethodBinding || m.Type.Class == stun.ClassRequest || m.Type.Class == stun.ClassIndication ||
				!bytes.Equal(m.TransactionID[:], req[8:20]) {
				t.Fatalf("response %v does not answer the request", m)
			}
			if len(resp) > 100 || len(resp) > len(req) {
				t.Fatalf("response of %d bytes to a request of %d", len(resp), len(req))
			}
			if delay < 0 || delay > MaxRespondAfter || (delay > 0 && m.Type.Class != stun.ClassSuccessResponse) {
				t.Fatalf("delay %v for a %v", delay, m.Type)
			}
			if delay > 0 && !m.Contains(stun.AttrXORMappedAddress) {
				t.Fatal("a delayed answer without XOR-MAPPED-ADDRESS")
			}
			if delay > 0 {
				if refusal, _, ok := h.refuseDelayed(req, in); !ok || len(refusal) > len(req) {
					t.Fatalf("refusal of %d bytes (%v) to a request of %d", len(refusal), ok, len(req))
				}
			}
		}
	})
}
