package tcppunch

import (
	"bytes"
	"testing"

	"github.com/hopproxy/hop/pkg/xtcp"
	"github.com/pion/stun/v3"
)

// FuzzDecode feeds arbitrary bytes to the hello and record decoders: never
// a panic; what decodes re-encodes to the same bytes (hello) or keeps the
// documented body sizes (records).
func FuzzDecode(f *testing.F) {
	h := hello{role: xtcp.RoleOwner, session: xtcp.NewSessionID()}
	f.Add(h.encode())
	f.Add([]byte{kindPacket, 1, 2, 3})
	f.Add(keepaliveRecord(kindPing, 7))
	f.Add(keepaliveRecord(kindPong, 1<<40))
	f.Add([]byte{kindNominate})
	f.Add([]byte{9})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := decodeHello(b); err == nil {
			if !bytes.Equal(h.encode(), b) {
				t.Fatalf("hello %x re-encodes as %x", b, h.encode())
			}
		}
		kind, body, err := decodeRecord(b)
		if err != nil {
			return
		}
		switch kind {
		case kindPacket:
			if len(body) > MaxPacket {
				t.Fatalf("packet of %d bytes", len(body))
			}
		case kindPing, kindPong:
			if len(body) != 8 {
				t.Fatalf("keepalive of %d bytes", len(body))
			}
		case kindNominate:
			if len(body) != 0 {
				t.Fatal("nominate with a body")
			}
		default:
			t.Fatalf("kind %d accepted", kind)
		}
	})
}

// FuzzSTUNAnswer feeds arbitrary bytes as hops' answer over TCP: never a
// panic, never more read than the bound, and an address only from a
// Binding success for our transaction.
func FuzzSTUNAnswer(f *testing.F) {
	var tx [stun.TransactionIDSize]byte
	copy(tx[:], "0123456789ab")
	ok := stun.MustBuild(stun.NewTransactionIDSetter(tx), stun.BindingSuccess,
		&stun.XORMappedAddress{IP: []byte{192, 0, 2, 1}, Port: 4000})
	f.Add(ok.Raw)
	f.Add(stun.MustBuild(stun.NewTransactionIDSetter(tx), stun.BindingError, stun.CodeUnknownAttribute).Raw)
	f.Add(stun.MustBuild(stun.NewTransactionIDSetter(tx), stun.BindingSuccess).Raw)
	f.Add([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		msg, err := readSTUN(r)
		if err != nil {
			return
		}
		if len(msg) > stunMaxReply || !bytes.Equal(msg, b[:len(msg)]) {
			t.Fatalf("read %d bytes", len(msg))
		}
		ap, err := parseBindingResponse(msg, tx)
		if err != nil {
			return
		}
		if !ap.IsValid() || ap.Port() == 0 || !bytes.Equal(msg[8:20], tx[:]) || msg[0] != 0x01 || msg[1] != 0x01 {
			t.Fatalf("address %v from %x", ap, msg)
		}
	})
}
