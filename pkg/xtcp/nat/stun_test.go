package nat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/pion/stun/v3"
)

var testTxID = [stun.TransactionIDSize]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}

// build encodes a message with the test transaction ID.
func build(t testing.TB, typ stun.MessageType, setters ...stun.Setter) []byte {
	t.Helper()
	m, err := stun.Build(append([]stun.Setter{typ, stun.NewTransactionIDSetter(testTxID)}, setters...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m.Raw
}

func xorMapped(ap string) stun.Setter {
	a := netip.MustParseAddrPort(ap)
	return &stun.XORMappedAddress{IP: a.Addr().AsSlice(), Port: int(a.Port())}
}

func mapped(typ stun.AttrType, ap string) stun.Setter {
	a := netip.MustParseAddrPort(ap)
	return mappedSetter{typ, stun.MappedAddress{IP: net.IP(a.Addr().AsSlice()), Port: int(a.Port())}}
}

type mappedSetter struct {
	typ stun.AttrType
	a   stun.MappedAddress
}

func (s mappedSetter) AddTo(m *stun.Message) error { return s.a.AddToAs(m, s.typ) }

// parseCases are the table of parseResponse; they also seed the fuzz target.
func parseCases(t testing.TB) []struct {
	name string
	b    []byte
	want *response // nil: must be rejected
} {
	full := build(t, stun.BindingSuccess, xorMapped("203.0.113.5:40000"), mapped(stun.AttrMappedAddress, "203.0.113.5:40000"),
		mapped(stun.AttrResponseOrigin, "192.0.2.1:3478"), mapped(stun.AttrOtherAddress, "192.0.2.2:3479"), stun.NewSoftware("hop"))
	mod := func(b []byte, f func(b []byte)) []byte { b = bytes.Clone(b); f(b); return b }
	otherTx := mod(full, func(b []byte) { b[19] ^= 1 })
	badFP := build(t, stun.BindingSuccess, xorMapped("203.0.113.5:40000"), stun.Fingerprint)
	badFP[len(badFP)-1] ^= 1
	return []struct {
		name string
		b    []byte
		want *response
	}{
		{"full success", full, &response{success: true, mapped: netip.MustParseAddrPort("203.0.113.5:40000"),
			origin: netip.MustParseAddrPort("192.0.2.1:3478"), other: netip.MustParseAddrPort("192.0.2.2:3479")}},
		{"ipv6", build(t, stun.BindingSuccess, xorMapped("[2001:db8::5]:40000")),
			&response{success: true, mapped: netip.MustParseAddrPort("[2001:db8::5]:40000")}},
		{"mapped-address only", build(t, stun.BindingSuccess, mapped(stun.AttrMappedAddress, "203.0.113.5:40000")),
			&response{success: true, mapped: netip.MustParseAddrPort("203.0.113.5:40000")}},
		{"good fingerprint", build(t, stun.BindingSuccess, xorMapped("203.0.113.5:40000"), stun.Fingerprint),
			&response{success: true, mapped: netip.MustParseAddrPort("203.0.113.5:40000")}},
		{"malformed OTHER-ADDRESS ignored", build(t, stun.BindingSuccess, xorMapped("203.0.113.5:40000"),
			rawAttr{stun.AttrOtherAddress, []byte{0, 1, 0, 1, 192, 0, 2}}),
			&response{success: true, mapped: netip.MustParseAddrPort("203.0.113.5:40000")}},
		{"error 420", build(t, stun.BindingError, stun.ErrorCodeAttribute{Code: 420, Reason: []byte("cannot\x00 change IP")}),
			&response{code: 420, reason: "cannot change IP"}},
		{"other transaction", otherTx, nil},
		{"request", build(t, stun.BindingRequest), nil},
		{"indication", build(t, stun.NewType(stun.MethodBinding, stun.ClassIndication), xorMapped("203.0.113.5:40000")), nil},
		{"allocate success", build(t, stun.NewType(stun.MethodAllocate, stun.ClassSuccessResponse), xorMapped("203.0.113.5:40000")), nil},
		{"no mapped address", build(t, stun.BindingSuccess, stun.NewSoftware("x")), nil},
		{"mapped port 0", build(t, stun.BindingSuccess, xorMapped("203.0.113.5:0")), nil},
		{"mapped unspecified", build(t, stun.BindingSuccess, xorMapped("0.0.0.0:40000")), nil},
		{"mapped too long", build(t, stun.BindingSuccess, rawAttr{stun.AttrXORMappedAddress, []byte{0, 1, 1, 2, 3, 4, 5, 6, 7, 8}}), nil},
		{"mapped bad family", build(t, stun.BindingSuccess, rawAttr{stun.AttrXORMappedAddress, []byte{0, 3, 1, 2, 3, 4, 5, 6}}), nil},
		{"error without code", build(t, stun.BindingError), nil},
		{"error class 7", build(t, stun.BindingError, rawAttr{stun.AttrErrorCode, []byte{0, 0, 7, 0}}), nil},
		{"bad fingerprint", badFP, nil},
		{"bad cookie", mod(full, func(b []byte) { b[5] ^= 1 }), nil},
		{"top bits", mod(full, func(b []byte) { b[0] |= 0x40 }), nil},
		{"trailing bytes", append(bytes.Clone(full), 0, 0, 0, 0), nil},
		{"truncated", full[:len(full)-4], nil},
		{"attr overflows", mod(full, func(b []byte) { b[headerSize+3] = 200 }), nil},
		{"short", full[:12], nil},
		{"empty", nil, nil},
	}
}

func TestParseResponse(t *testing.T) {
	for _, tt := range parseCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseResponse(tt.b, testTxID)
			if tt.want == nil {
				if err == nil || !errors.Is(err, errNotOurs) {
					t.Fatalf("accepted: %+v, %v", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseResponse: %v", err)
			}
			if got != *tt.want {
				t.Fatalf("got %+v, want %+v", got, *tt.want)
			}
		})
	}
}

func TestNewRequest(t *testing.T) {
	for _, tt := range []struct {
		ip, port bool
		flags    byte
	}{{false, false, 0}, {true, false, 4}, {false, true, 2}, {true, true, 6}} {
		txid, raw := newRequest(tt.ip, tt.port)
		m := &stun.Message{Raw: raw}
		if err := m.Decode(); err != nil || m.Type != stun.BindingRequest || m.TransactionID != txid {
			t.Fatalf("request %x: %v %v", raw, m, err)
		}
		if len(raw) != RequestSize || !m.Contains(stun.AttrPadding) {
			t.Errorf("request of %d bytes (PADDING %v), want padded to %d: hop's STUN server drops requests shorter than its answer",
				len(raw), m.Contains(stun.AttrPadding), RequestSize)
		}
		v, err := m.Get(stun.AttrChangeRequest)
		if tt.flags == 0 {
			if err == nil {
				t.Errorf("unexpected CHANGE-REQUEST %x", v)
			}
			continue
		}
		if err != nil || !bytes.Equal(v, []byte{0, 0, 0, tt.flags}) {
			t.Errorf("CHANGE-REQUEST %x (%v), want flags %x", v, err, tt.flags)
		}
	}
	a, _ := newRequest(false, false)
	b, _ := newRequest(false, false)
	if a == b {
		t.Error("two requests with one transaction ID")
	}
}

func TestSanitize(t *testing.T) {
	long := bytes.Repeat([]byte("é"), 100)
	if got := sanitize(long); len(got) > maxReason || !bytes.Equal([]byte(got), bytes.Repeat([]byte("é"), maxReason/2)) {
		t.Errorf("sanitize(long) = %q", got)
	}
	if got := sanitize([]byte("a\x1b[31mb\xffc\n")); got != "a[31mb?c" {
		t.Errorf("sanitize = %q", got)
	}
}

// FuzzParseResponse feeds arbitrary bytes as a response: parseResponse must
// never panic, and may accept only a Binding success or error response with
// our transaction ID, a success only with a usable mapped address.
func FuzzParseResponse(f *testing.F) {
	for _, c := range parseCases(f) {
		f.Add(c.b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		r, err := parseResponse(b, testTxID)
		if !bytes.Equal(b, orig) {
			t.Fatal("parseResponse modified its input")
		}
		if err != nil {
			if r != (response{}) {
				t.Fatalf("rejected with a non-zero response %+v", r)
			}
			return
		}
		if len(b) < headerSize || binary.BigEndian.Uint32(b[4:8]) != magicCookie || !bytes.Equal(b[8:20], testTxID[:]) ||
			int(binary.BigEndian.Uint16(b[2:4])) != len(b)-headerSize {
			t.Fatalf("accepted %x: not a message of our transaction", b)
		}
		switch typ := binary.BigEndian.Uint16(b[0:2]); {
		case r.success:
			if typ != 0x0101 {
				t.Fatalf("success from message type %#04x", typ)
			}
			if !r.mapped.IsValid() || r.mapped.Port() == 0 || r.mapped.Addr().IsUnspecified() {
				t.Fatalf("success without a usable mapped address: %+v", r)
			}
		default:
			if typ != 0x0111 {
				t.Fatalf("error response from message type %#04x", typ)
			}
			if r.code < 300 || r.code > 699 || len(r.reason) > maxReason {
				t.Fatalf("error response %+v", r)
			}
		}
	})
}
