package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

var samples = []Message{
	&ClientHello{ClientID: "c1", Nonce: bytes.Repeat([]byte{1}, NonceSize), Share: bytes.Repeat([]byte{9}, ShareSize),
		IdentityKey: bytes.Repeat([]byte{8}, IdentityKeySize), HeartbeatIntervalMs: 10000, Software: "hopc/test"},
	&ClientHello{User: "alice", ClientID: "c1", Nonce: bytes.Repeat([]byte{1}, NonceSize), Share: bytes.Repeat([]byte{9}, ShareSize),
		IdentityKey: bytes.Repeat([]byte{8}, IdentityKeySize)},
	&Challenge{Share: bytes.Repeat([]byte{2}, ShareSize)},
	&ClientProof{Tag: bytes.Repeat([]byte{3}, TagSize), Signature: bytes.Repeat([]byte{7}, SignatureSize)},
	&Welcome{SessionID: "abc", HeartbeatIntervalMs: 1, HeartbeatTimeoutMs: 3},
	&ServerProof{Tag: bytes.Repeat([]byte{4}, TagSize)},
	&Error{Code: CodeAuthFailed, Message: "no"},
	&Error{Code: CodeClientIDInUse, Message: "held by another hopc"},
	&NewProxy{Name: "ssh", ProxyType: ProxyTCP, RemotePort: 6000},
	&NewProxy{Name: "dns", ProxyType: ProxyUDP, RemotePort: 0, IdleTimeoutMs: 60000},
	&NewProxyResp{Name: "ssh", RemotePort: 6000},
	&NewProxyResp{Name: "ssh", Code: CodePortInUse, Error: "taken"},
	&CloseProxy{Name: "ssh"},
	&Ping{Seq: 7, SentNanos: 99},
	&Pong{Seq: 7, EchoNanos: 99},
	&StartWork{Proxy: "ssh", SrcAddr: "1.2.3.4:5"},
	&StartWork{Proxy: "ssh", SrcAddr: "visitor", Visitor: "c2"},
	&StartWork{Proxy: "ssh", SrcAddr: "visitor", Visitor: "c2", VisitorUser: "bob"},
	&NewProxy{Name: "p2p", ProxyType: ProxyXTCP, AllowUsers: []string{"c2", "*"}},
	&NewProxy{Name: "web", ProxyType: ProxyHTTP, CustomDomains: []string{"a.example.com", "*.b.example.com"}, Subdomain: "web",
		Locations: []string{"/", "/api"}, HTTPUser: "u", HTTPPassword: "p", RouteByHTTPUser: "u", HostHeaderRewrite: "localhost",
		RequestHeaders: map[string]string{"X-A": "1"}, ResponseHeaders: map[string]string{"X-B": "2"}},
	&NewProxy{Name: "tls", ProxyType: ProxyHTTPS, CustomDomains: []string{"secure.example.com"}},
	&NewProxy{Name: "mux", ProxyType: ProxyTCPMux, Multiplexer: MultiplexerHTTPConnect, CustomDomains: []string{"tunnel1"}, HTTPUser: "u", HTTPPassword: "p"},
	&NewProxy{Name: "web-a", ProxyType: ProxyTCP, RemotePort: 6080, BandwidthLimit: 1 << 20, Group: "web", GroupKey: "k"},
	&StartWork{Proxy: "ssh", SrcAddr: "1.2.3.4:5", DstAddr: "127.0.0.1:6000"},
	&P2POffer{ID: "o1", Proxy: "p2p", ProxyType: ProxyXTCP, Visitor: "c2", SessionID: "00112233445566778899aabbccddeeff",
		NAT: "EIM/APDF", Share: bytes.Repeat([]byte{7}, ShareSize)},
	&P2PAuth{ID: "o1", SessionID: "00112233445566778899aabbccddeeff", Share: bytes.Repeat([]byte{8}, ShareSize), Tag: bytes.Repeat([]byte{9}, TagSize)},
	&P2PAuth{SessionID: "00112233445566778899aabbccddeeff", Tag: bytes.Repeat([]byte{9}, TagSize), Sealed: []byte("sealed box")},
	&P2PAnswer{ID: "o1", SessionID: "00112233445566778899aabbccddeeff", NAT: "EIM/EIF", Sealed: []byte("box"), DelayMs: 30},
	&P2POffer{ID: "o2", Proxy: "p2p", ProxyType: ProxyXUDP, ServerUser: "alice", Visitor: "c2", VisitorUser: "bob", Share: bytes.Repeat([]byte{7}, ShareSize)},
	&P2PAnswer{ID: "o1", Code: CodeBadRequest, Error: "no such proxy"},
	&P2PGo{SessionID: "00112233445566778899aabbccddeeff", DelayMs: 12},
	&P2PResult{SessionID: "00112233445566778899aabbccddeeff", Role: "owner", Outcome: "lan", ElapsedMs: 3, Packets: 4},
	&P2PResult{SessionID: "00112233445566778899aabbccddeeff", Role: "visitor", Outcome: "direct", Path: "srflx", Transport: "tcp", ElapsedMs: 3},
	&Visit{Proxy: "p2p", ProxyType: ProxySTCP},
	&Visit{Proxy: "p2p", ProxyType: ProxySTCP, ServerUser: "alice"},
	&VisitHello{SID: bytes.Repeat([]byte{5}, VisitSIDSize), Share: bytes.Repeat([]byte{6}, ShareSize)},
	&VisitAccept{Share: bytes.Repeat([]byte{6}, ShareSize), Tag: bytes.Repeat([]byte{7}, TagSize)},
	&VisitConfirm{Tag: bytes.Repeat([]byte{7}, TagSize)},
	&VisitConfirm{Tag: bytes.Repeat([]byte{7}, TagSize), Src: bytes.Repeat([]byte{8}, 60)},
	&Welcome{SessionID: "abc", HeartbeatIntervalMs: 1, HeartbeatTimeoutMs: 3, ProbeKey: "00112233445566778899aabbccddeeff", MaxHeartbeatIntervalMs: 60000},
	&IdleProbe{SessionID: "abc", ProbeKey: "00112233445566778899aabbccddeeff", SilenceMs: 30000},
	&IdleProbeAck{},
	&IdleProbeAck{Wake: true},
	&HeartbeatUpdate{IntervalMs: 18000, LearnedMs: 40000},
	&NewProxy{Name: "web", ProxyType: ProxyHTTP, CustomDomains: []string{"a.example.com"}, ProxyProtocol: true, Group: "g", GroupKey: "k"},
}

// The probe messages' bounds.
func TestIdleProbeBounds(t *testing.T) {
	key := "00112233445566778899aabbccddeeff"
	for _, m := range []Message{
		&IdleProbe{SessionID: "", ProbeKey: key, SilenceMs: 1000},
		&IdleProbe{SessionID: "a", ProbeKey: "00", SilenceMs: 1000},
		&IdleProbe{SessionID: "a", ProbeKey: key, SilenceMs: 10},
		&IdleProbe{SessionID: "a", ProbeKey: key, SilenceMs: int64(MaxProbeSilence/time.Millisecond) + 1},
		&HeartbeatUpdate{IntervalMs: 0},
		&HeartbeatUpdate{IntervalMs: 1000, LearnedMs: -1},
	} {
		b, err := Encode(m)
		if err == nil {
			_, err = Decode(m.Type(), b[HeaderSize:])
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%#v: %v, want ErrMalformed", m, err)
		}
	}
}

func FuzzIdleProbe(f *testing.F)       { fuzzDecode(f, TypeIdleProbe) }
func FuzzHeartbeatUpdate(f *testing.F) { fuzzDecode(f, TypeHeartbeatUpdate) }

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	for _, m := range samples {
		if err := WriteMsg(&buf, m); err != nil {
			t.Fatalf("write %v: %v", m.Type(), err)
		}
	}
	for _, want := range samples {
		got, err := ReadMsg(&buf)
		if err != nil {
			t.Fatalf("read %v: %v", want.Type(), err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %#v, want %#v", got, want)
		}
	}
	if _, err := ReadMsg(&buf); err != io.EOF {
		t.Fatalf("after last frame: %v, want io.EOF", err)
	}
}

func frame(version, typ byte, payload string) []byte {
	b := []byte{version, typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[2:], uint32(len(payload)))
	return append(b, payload...)
}

func TestDecodeErrors(t *testing.T) {
	huge := []byte{Version, byte(TypePing), 0, 1, 0, 1} // 65537 bytes announced
	tests := []struct {
		name  string
		in    []byte
		is    error
		words string
	}{
		{"oversize", huge, ErrFrameTooLarge, "65537"},
		{"version 1", frame(1, byte(TypePing), `{}`), ErrVersion, "peer speaks v1, this build speaks v2"},
		{"version 3", frame(3, byte(TypePing), `{}`), ErrVersion, "peer speaks v3"},
		{"short share", frame(Version, byte(TypeChallenge), `{"share":"AAAA"}`), ErrMalformed, "share must be 32 bytes"},
		{"v1 challenge", frame(Version, byte(TypeChallenge), `{"nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`), ErrMalformed, "share must be 32 bytes"},
		{"hello without identity", frame(Version, byte(TypeClientHello), `{"clientID":"c","nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","share":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`), ErrMalformed, "identityKey must be 32 bytes"},
		{"hello bad user", frame(Version, byte(TypeClientHello), `{"user":"a b","clientID":"c"}`), ErrMalformed, "user"},
		{"proof without signature", frame(Version, byte(TypeClientProof), `{"tag":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`), ErrMalformed, "signature must be 64 bytes"},
		{"server proof short", frame(Version, byte(TypeServerProof), `{"tag":"AAAA"}`), ErrMalformed, "tag must be 32 bytes"},
		{"start work bad user", frame(Version, byte(TypeStartWork), `{"proxy":"p","visitorUser":"a/b"}`), ErrMalformed, "visitorUser"},
		{"visit bad server user", frame(Version, byte(TypeVisit), `{"proxy":"p","type":"stcp","serverUser":"a b"}`), ErrMalformed, "serverUser"},
		{"unknown type", frame(Version, 200, `{}`), ErrUnknownType, "200"},
		{"bad json", frame(Version, byte(TypePing), `{`), ErrMalformed, "Ping"},
		{"wrong json type", frame(Version, byte(TypeNewProxy), `{"name":5}`), ErrMalformed, "NewProxy"},
		{"short nonce", frame(Version, byte(TypeClientHello), `{"clientID":"c","nonce":"AAAA"}`), ErrMalformed, "nonce must be 32 bytes"},
		{"bad proxy name", frame(Version, byte(TypeNewProxy), `{"name":"a b","type":"tcp"}`), ErrMalformed, "outside"},
		{"bad proxy type", frame(Version, byte(TypeNewProxy), `{"name":"a","type":"sctp"}`), ErrMalformed, "sctp"},
		{"secret proxy with port", frame(Version, byte(TypeNewProxy), `{"name":"a","type":"xtcp","remotePort":5}`), ErrMalformed, "no remote port"},
		{"offer without share", frame(Version, byte(TypeP2POffer), `{"id":"a","proxy":"p","type":"xtcp"}`), ErrMalformed, "share must be 32 bytes"},
		{"auth without tag", frame(Version, byte(TypeP2PAuth), `{"sessionID":"00112233445566778899aabbccddeeff"}`), ErrMalformed, "tag must be 32 bytes"},
		{"short visit share", frame(Version, byte(TypeVisitHello), `{"sid":"AAAAAAAAAAAAAAAAAAAAAA==","share":"AAAA"}`), ErrMalformed, "share must be 32 bytes"},
		{"retired VisitAuth", frame(Version, 50, `{}`), ErrUnknownType, "50"},
		{"bad session", frame(Version, byte(TypeP2PGo), `{"sessionID":"xyz"}`), ErrMalformed, "sessionID"},
		{"bad transport", frame(Version, byte(TypeP2PResult), `{"sessionID":"00112233445566778899aabbccddeeff","role":"visitor","outcome":"direct","transport":"sctp"}`), ErrMalformed, "transport"},
		{"port range", frame(Version, byte(TypeNewProxy), `{"name":"a","type":"tcp","remotePort":70000}`), ErrMalformed, "70000"},
		{"error without code", frame(Version, byte(TypeError), `{"message":"x"}`), ErrMalformed, "without code"},
		{"truncated payload", frame(Version, byte(TypePing), `{}`)[:7], io.ErrUnexpectedEOF, ""},
		{"truncated header", []byte{Version, 1}, io.ErrUnexpectedEOF, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadMsg(bytes.NewReader(tt.in))
			if !errors.Is(err, tt.is) {
				t.Fatalf("err = %v, want %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.words) {
				t.Fatalf("err = %q, want it to mention %q", err, tt.words)
			}
		})
	}
}

func TestWriteTooLarge(t *testing.T) {
	err := WriteFrame(io.Discard, TypePing, make([]byte, MaxPayload+1))
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("err = %v", err)
	}
}

func TestReadAs(t *testing.T) {
	var buf bytes.Buffer
	WriteMsg(&buf, &Error{Code: CodePortInUse, Message: "taken"})
	WriteMsg(&buf, &Ping{Seq: 1})
	if _, err := ReadAs[*Pong](&buf); err == nil || err.(*Error).Code != CodePortInUse {
		t.Fatalf("want the peer's *Error, got %v", err)
	}
	if _, err := ReadAs[*Pong](&buf); !errors.Is(err, ErrUnexpected) {
		t.Fatalf("want ErrUnexpected, got %v", err)
	}
}

func TestDatagram(t *testing.T) {
	var buf bytes.Buffer
	for _, n := range []int{0, 1, 1400, MaxDatagram} {
		b, err := AppendDatagram(nil, bytes.Repeat([]byte{byte(n)}, n))
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
	}
	rb := make([]byte, MaxDatagram)
	for _, n := range []int{0, 1, 1400, MaxDatagram} {
		got, err := ReadDatagram(&buf, rb)
		if err != nil || got != n {
			t.Fatalf("ReadDatagram = %d, %v; want %d", got, err, n)
		}
	}
	if _, err := AppendDatagram(nil, make([]byte, MaxDatagram+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversize datagram: %v", err)
	}
	if _, err := ReadDatagram(bytes.NewReader([]byte{0xff, 0xff}), rb); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversize announced datagram: %v", err)
	}
}

// FuzzReadMsg feeds arbitrary bytes to the control-frame decoder: it must
// never panic, and whatever it accepts must encode and decode to the same
// message.
func FuzzReadMsg(f *testing.F) {
	for _, m := range samples {
		b, _ := Encode(m)
		f.Add(b)
	}
	f.Add(frame(2, 1, "{}"))
	f.Add([]byte{Version, byte(TypePing), 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ReadMsg(bytes.NewReader(in))
		if err != nil {
			return
		}
		b, err := Encode(m)
		if err != nil {
			t.Fatalf("re-encode %T: %v", m, err)
		}
		m2, err := ReadMsg(bytes.NewReader(b))
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip of %#v: %#v, %v", m, m2, err)
		}
	})
}

// FuzzReadDatagram: the udp datagram framing of data streams.
func FuzzReadDatagram(f *testing.F) {
	f.Add([]byte{0, 3, 'a', 'b', 'c'})
	f.Add([]byte{0xff, 0xff})
	f.Add([]byte{0, 5, 'a'})
	f.Fuzz(func(t *testing.T, in []byte) {
		buf := make([]byte, MaxDatagram)
		r := bytes.NewReader(in)
		for {
			n, err := ReadDatagram(r, buf)
			if err != nil {
				return
			}
			if n > MaxDatagram {
				t.Fatalf("n = %d", n)
			}
		}
	})
}

func TestDecodeP2PInfo(t *testing.T) {
	good := `{"candidates":[{"kind":"host","addr":"10.0.0.2:4000"},{"kind":"srflx","addr":"[2001:db8::1]:5"}],"nat":"EIM/APDF"}`
	m, err := DecodeP2PInfo([]byte(good))
	if err != nil || len(m.Candidates) != 2 || m.NAT != "EIM/APDF" {
		t.Fatalf("good info: %+v, %v", m, err)
	}
	for _, bad := range []string{`{`, `{"candidates":[{"kind":"host","addr":"nope"}]}`, `{"candidates":[{"kind":"relay","addr":"1.2.3.4:5"}]}`,
		`{"nat":"` + strings.Repeat("x", 40) + `"}`} {
		if _, err := DecodeP2PInfo([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", bad, err)
		}
	}
}

// FuzzDecodeP2PInfo: the plaintext of a sealed P2PInfo (it comes from the
// peer, authenticated but not trusted to be well formed).
func FuzzDecodeP2PInfo(f *testing.F) {
	f.Add([]byte(`{"candidates":[{"kind":"host","addr":"10.0.0.2:4000"}],"nat":"EIM/APDF"}`))
	f.Add([]byte(`{"candidates":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := DecodeP2PInfo(in)
		if err != nil {
			return
		}
		if len(m.Candidates) > MaxCandidates {
			t.Fatalf("%d candidates accepted", len(m.Candidates))
		}
	})
}

// fuzzDecode fuzzes the decoder of one message type with payloads seeded
// from the samples of that type: it must never panic, and what it accepts
// must survive a round trip.
func fuzzDecode(f *testing.F, t Type) {
	for _, m := range samples {
		if m.Type() == t {
			b, _ := Encode(m)
			f.Add(b[HeaderSize:])
		}
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(tt *testing.T, payload []byte) {
		m, err := Decode(t, payload)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				tt.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		b, err := Encode(m)
		if err != nil {
			tt.Fatalf("re-encode: %v", err)
		}
		m2, err := Decode(t, b[HeaderSize:])
		if err != nil || !reflect.DeepEqual(m, m2) {
			tt.Fatalf("round trip of %#v: %#v, %v", m, m2, err)
		}
	})
}

// The handshake messages, one target each.
func FuzzClientHello(f *testing.F)  { fuzzDecode(f, TypeClientHello) }
func FuzzChallenge(f *testing.F)    { fuzzDecode(f, TypeChallenge) }
func FuzzClientProof(f *testing.F)  { fuzzDecode(f, TypeClientProof) }
func FuzzServerProof(f *testing.F)  { fuzzDecode(f, TypeServerProof) }
func FuzzWelcome(f *testing.F)      { fuzzDecode(f, TypeWelcome) }
func FuzzError(f *testing.F)        { fuzzDecode(f, TypeError) }
func FuzzStartWork(f *testing.F)    { fuzzDecode(f, TypeStartWork) }
func FuzzVisit(f *testing.F)        { fuzzDecode(f, TypeVisit) }
func FuzzP2POffer(f *testing.F)     { fuzzDecode(f, TypeP2POffer) }
func FuzzNewProxy(f *testing.F)     { fuzzDecode(f, TypeNewProxy) }
func FuzzVisitConfirm(f *testing.F) { fuzzDecode(f, TypeVisitConfirm) }

// TestReadFrameMax: a header announcing more than the limit fails with
// ErrFrameTooLarge without reading its payload; at the limit it reads.
func TestReadFrameMax(t *testing.T) {
	atLimit, _ := AppendFrame(nil, TypePing, bytes.Repeat([]byte{'x'}, MaxPreAuthPayload))
	over, _ := AppendFrame(nil, TypePing, bytes.Repeat([]byte{'x'}, MaxPreAuthPayload+1))
	if _, p, err := ReadFrameMax(bytes.NewReader(atLimit), MaxPreAuthPayload); err != nil || len(p) != MaxPreAuthPayload {
		t.Fatalf("frame at the limit: %d bytes, %v", len(p), err)
	}
	r := bytes.NewReader(over)
	if _, _, err := ReadFrameMax(r, MaxPreAuthPayload); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("frame over the limit: %v, want ErrFrameTooLarge", err)
	}
	if read := len(over) - r.Len(); read != HeaderSize {
		t.Fatalf("read %d bytes of an oversize frame, want only the %d-byte header", read, HeaderSize)
	}
	// A 64 KiB announcement (what a pre-auth peer could make the server
	// buffer before) is refused before any allocation.
	huge := []byte{Version, byte(TypePing), 0, 1, 0, 0}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const runs = 100
	for range runs {
		if _, _, err := ReadFrameMax(bytes.NewReader(huge), MaxPreAuthPayload); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > MaxPreAuthPayload {
		t.Fatalf("%d bytes allocated per refused 64 KiB frame, want under %d", per, MaxPreAuthPayload)
	}
	// The limit is clamped: no limit lifts MaxPayload.
	big, _ := AppendFrame(nil, TypePing, nil)
	big[2], big[3] = 0, 2 // 128 KiB announced
	if _, _, err := ReadFrameMax(bytes.NewReader(big), 1<<30); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("limit over MaxPayload: %v", err)
	}
	if _, _, err := ReadFrameMax(bytes.NewReader(atLimit), -1); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("negative limit: %v", err)
	}
	m, _ := Encode(&Ping{})
	if _, err := ReadMsgMax(bytes.NewReader(m), MaxPreAuthPayload); err != nil {
		t.Fatalf("ReadMsgMax of a ping: %v", err)
	}
}

// FuzzReadFrameMax: whatever the bytes and the limit, ReadFrameMax never
// panics and never returns a payload over the limit (or MaxPayload).
func FuzzReadFrameMax(f *testing.F) {
	for _, m := range samples {
		b, _ := Encode(m)
		f.Add(b, MaxPreAuthPayload)
	}
	f.Add([]byte{Version, byte(TypePing), 0, 1, 0, 0}, MaxPreAuthPayload)
	f.Add([]byte{Version, byte(TypePing), 0, 0, 0, 1, 'x'}, 0)
	f.Add([]byte{Version, byte(TypePing), 0, 0, 0, 1, 'x'}, -5)
	f.Fuzz(func(t *testing.T, in []byte, limit int) {
		_, p, err := ReadFrameMax(bytes.NewReader(in), limit)
		if err != nil {
			return
		}
		if len(p) > max(limit, 0) || len(p) > MaxPayload {
			t.Fatalf("payload of %d bytes with limit %d", len(p), limit)
		}
	})
}

func TestLinkRecords(t *testing.T) {
	h := LinkHello{Resume: true}
	h.ID[0], h.ID[15] = 1, 2
	got, err := DecodeLinkHello(h.Encode())
	if err != nil || got != h {
		t.Fatalf("%+v, %v", got, err)
	}
	id, err := ParseLinkID(h.ID.String())
	if err != nil || id != h.ID {
		t.Fatalf("%v %v", id, err)
	}
	for _, s := range []string{"", "zz", h.ID.String()[2:]} {
		if _, err := ParseLinkID(s); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseLinkID(%q): %v", s, err)
		}
	}
	if st, err := DecodeLinkStatus(EncodeLinkStatus(LinkUnknown)); err != nil || st != LinkUnknown {
		t.Fatalf("%d %v", st, err)
	}
	bad := h.Encode()
	bad[5] = 0x80
	if _, err := DecodeLinkHello(bad); !errors.Is(err, ErrMalformed) {
		t.Errorf("flags: %v", err)
	}
	if _, err := DecodeLinkHello([]byte("hello, old protocol")); !errors.Is(err, ErrMalformed) {
		t.Errorf("old peer: %v", err)
	}
	if _, err := DecodeLinkStatus(append(EncodeLinkStatus(0)[:4], 9, 0)); !errors.Is(err, ErrMalformed) {
		t.Errorf("version: %v", err)
	}
	// Version 2 says the streams have heads; version 1 (older visitors)
	// still decodes, without; 3 is refused, and a status is version 1.
	h.Heads = true
	v2 := h.Encode()
	if got, err := DecodeLinkHello(v2); err != nil || got != h || v2[4] != 2 {
		t.Fatalf("v2 %+v, %v", got, err)
	}
	v2[4] = 3
	if _, err := DecodeLinkHello(v2); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "this hopc speaks 1 to 2") {
		t.Errorf("v3 hello: %v", err)
	}
	if _, err := DecodeLinkStatus(append(EncodeLinkStatus(0)[:4], 2, 0)); !errors.Is(err, ErrMalformed) {
		t.Errorf("v2 status: %v", err)
	}
}

func TestStreamHead(t *testing.T) {
	for _, c := range []struct{ src, dst, wantSrc, wantDst string }{
		{"192.0.2.1:5000", "127.0.0.1:6000", "192.0.2.1:5000", "127.0.0.1:6000"},
		{"[2001:db8::1]:443", "", "[2001:db8::1]:443", ""},
		{"visitor x (link)", "@/tmp/sock", "", ""}, // not addresses: sent empty
		{strings.Repeat("1", 70), "1.2.3.4:1", "", "1.2.3.4:1"},
	} {
		src, dst, err := ReadStreamHead(bytes.NewReader(EncodeStreamHead(c.src, c.dst)))
		if err != nil || src != c.wantSrc || dst != c.wantDst {
			t.Errorf("head(%q, %q) read back %q %q %v", c.src, c.dst, src, dst, err)
		}
	}
	for _, in := range [][]byte{{}, {5, '1'}, {65}, append([]byte{3}, "abc"...), {0, 4, 'x', ':', '9', '9'}} {
		if _, _, err := ReadStreamHead(bytes.NewReader(in)); err == nil {
			t.Errorf("head %q accepted", in)
		}
	}
}

// FuzzStreamHead: a stream's head comes from the visitor, another hopc.
func FuzzStreamHead(f *testing.F) {
	f.Add(EncodeStreamHead("192.0.2.1:5000", "127.0.0.1:6000"))
	f.Add([]byte{64})
	f.Fuzz(func(t *testing.T, in []byte) {
		src, dst, err := ReadStreamHead(bytes.NewReader(in))
		if err != nil {
			return
		}
		s2, d2, err := ReadStreamHead(bytes.NewReader(EncodeStreamHead(src, dst)))
		if err != nil || s2 != src || d2 != dst {
			t.Fatalf("round trip %q %q: %q %q %v", src, dst, s2, d2, err)
		}
	})
}

// FuzzLinkRecords: the first records of a link's relay come from the peer
// through the server.
func FuzzLinkRecords(f *testing.F) {
	f.Add(LinkHello{Resume: true}.Encode())
	f.Add(EncodeLinkStatus(LinkOK))
	f.Fuzz(func(t *testing.T, in []byte) {
		if h, err := DecodeLinkHello(in); err == nil {
			if again, err := DecodeLinkHello(h.Encode()); err != nil || again != h {
				t.Fatalf("round trip %+v: %+v %v", h, again, err)
			}
		}
		if st, err := DecodeLinkStatus(in); err == nil && st > LinkUnknown {
			t.Fatalf("status %d accepted", st)
		}
	})
}
