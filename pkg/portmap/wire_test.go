package portmap

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPMPRequests(t *testing.T) {
	// RFC 6886 section 3.2: version 0, opcode 0.
	if got := pmpExternalRequest(); !bytes.Equal(got, []byte{0, 0}) {
		t.Fatalf("external address request % x", got)
	}
	// Section 3.3: version, opcode 1 (UDP) / 2 (TCP), reserved, internal
	// port, suggested external port, lifetime (7200 recommended).
	got := pmpMapRequest("udp", 4000, 4001, 7200)
	if want := unhex(t, "00 01 0000 0fa0 0fa1 00001c20"); !bytes.Equal(got, want) {
		t.Fatalf("UDP map request % x, want % x", got, want)
	}
	got = pmpMapRequest("tcp", 22, 0, 0) // section 3.4: delete
	if want := unhex(t, "00 02 0000 0016 0000 00000000"); !bytes.Equal(got, want) {
		t.Fatalf("TCP delete request % x, want % x", got, want)
	}
}

// pmpTable holds NAT-PMP responses. The first two were captured from
// miniupnpd 2.3.1 in the lab (external address 11.45.67.1, epoch 11; UDP
// 4000 -> 4000 for 60 s, epoch 3).
var pmpTable = []struct {
	name string
	in   string
	want pmpResponse
	err  error
}{
	{"miniupnpd external", "00 80 0000 0000000b 0b2d4301", pmpResponse{Op: 0, Epoch: 11, External: netip.MustParseAddr("11.45.67.1")}, nil},
	{"miniupnpd map", "00 81 0000 00000003 0fa0 0fa0 0000003c", pmpResponse{Op: 1, Epoch: 3, Internal: 4000, Mapped: 4000, Lifetime: 60}, nil},
	{"tcp map", "00 82 0000 00010000 0016 c350 00001c20", pmpResponse{Op: 2, Epoch: 65536, Internal: 22, Mapped: 50000, Lifetime: 7200}, nil},
	{"refused", "00 81 0002 00000003 0fa0 0000 00000000", pmpResponse{Op: 1, Result: 2, Epoch: 3}, ErrRefused},
	{"refused short", "00 81 0003 00000003", pmpResponse{Op: 1, Result: 3, Epoch: 3}, ErrRefused},
	{"unsupported opcode", "00 82 0005 00000003", pmpResponse{Op: 2, Result: 5, Epoch: 3}, ErrUnsupported},
	{"unsupported version", "00 80 0001 00000003 00000000", pmpResponse{Op: 0, Result: 1, Epoch: 3}, ErrUnsupported},
	{"pcp answer", "02 80 0001 00000003 00000000", pmpResponse{}, ErrUnsupported},
	{"short", "00 80 0000 0000", pmpResponse{}, ErrMalformed},
	{"short external", "00 80 0000 00000003 0b2d", pmpResponse{Op: 0, Epoch: 3}, ErrMalformed},
	{"short map", "00 81 0000 00000003 0fa0 0fa0", pmpResponse{Op: 1, Epoch: 3}, ErrMalformed},
	{"request echoed", "00 01 0000 0fa0 0fa1 00001c20", pmpResponse{}, ErrMalformed},
	{"bad version", "01 80 0000 00000003 0b2d4301", pmpResponse{}, ErrMalformed},
	{"opcode 131", "00 83 0000 00000003 0fa0 0fa0 0000003c", pmpResponse{}, ErrMalformed},
}

func TestParsePMPResponse(t *testing.T) {
	for _, tc := range pmpTable {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parsePMPResponse(unhex(t, tc.in))
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func FuzzParsePMPResponse(f *testing.F) {
	for _, tc := range pmpTable {
		f.Add(unhex(f, tc.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parsePMPResponse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrRefused) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if r.Result != 0 || r.Op > 2 || len(b) < pmpExternalLen {
			t.Fatalf("accepted %x as %+v", b, r)
		}
		if r.Op == 0 && !r.External.Is4() || r.Op != 0 && len(b) < pmpMapLen {
			t.Fatalf("accepted %x as %+v", b, r)
		}
	})
}

func TestPCPRequestMarshal(t *testing.T) {
	nonce := [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	// RFC 6887 sections 7.1 and 11.1: header, then the MAP payload. The
	// suggested external address "any" is ::ffff:0.0.0.0 for IPv4.
	got := pcpRequest{
		Op: pcpOpMap, Lifetime: 7200, Client: netip.MustParseAddr("10.1.0.10"),
		Nonce: nonce, Proto: protoNumUDP, InternalPort: 4000, ExternalPort: 4000,
	}.marshal()
	want := unhex(t, "02 01 0000 00001c20 00000000000000000000ffff0a01000a"+
		"0102030405060708090a0b0c 11 000000 0fa0 0fa0 00000000000000000000ffff00000000")
	if !bytes.Equal(got, want) {
		t.Fatalf("MAP request\n got % x\nwant % x", got, want)
	}
	// Section 12.1: PEER adds remote port, reserved, remote address.
	got = pcpRequest{
		Op: pcpOpPeer, Lifetime: 120, Client: netip.MustParseAddr("10.1.0.10"),
		Nonce: nonce, Proto: protoNumTCP, InternalPort: 22, ExternalPort: 50000,
		ExternalIP: netip.MustParseAddr("11.45.67.1"),
		RemotePort: 443, RemoteIP: netip.MustParseAddr("198.51.100.10"),
	}.marshal()
	want = unhex(t, "02 02 0000 00000078 00000000000000000000ffff0a01000a"+
		"0102030405060708090a0b0c 06 000000 0016 c350 00000000000000000000ffff0b2d4301"+
		"01bb 0000 00000000000000000000ffffc633640a")
	if !bytes.Equal(got, want) {
		t.Fatalf("PEER request\n got % x\nwant % x", got, want)
	}
	// Section 14.1: ANNOUNCE is the header alone, lifetime 0.
	got = pcpRequest{Op: pcpOpAnnounce, Client: netip.MustParseAddr("10.1.0.10")}.marshal()
	if want := unhex(t, "02 00 0000 00000000 00000000000000000000ffff0a01000a"); !bytes.Equal(got, want) {
		t.Fatalf("ANNOUNCE % x, want % x", got, want)
	}
}

const (
	pcpNonceHex  = "0102030405060708090a0b0c"
	pcpV4ExtHex  = "00000000000000000000ffff0b2d4301"
	pcpV4PeerHex = "00000000000000000000ffffc633640a"
)

var pcpTable = []struct {
	name string
	in   string
	want pcpResponse
	err  error
}{
	{"map success", "02 81 00 00 00001c20 0000002a 000000000000000000000000" + pcpNonceHex + "11 000000 0fa0 c350" + pcpV4ExtHex,
		pcpResponse{Op: 1, Lifetime: 7200, Epoch: 42, Nonce: [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, Proto: 17, InternalPort: 4000, ExternalPort: 50000, ExternalIP: netip.MustParseAddr("11.45.67.1")}, nil},
	{"peer success", "02 82 00 00 00000078 00000007 000000000000000000000000" + pcpNonceHex + "06 000000 0016 c350" + pcpV4ExtHex + "01bb 0000" + pcpV4PeerHex,
		pcpResponse{Op: 2, Lifetime: 120, Epoch: 7, Nonce: [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, Proto: 6, InternalPort: 22, ExternalPort: 50000, ExternalIP: netip.MustParseAddr("11.45.67.1"), RemotePort: 443, RemoteIP: netip.MustParseAddr("198.51.100.10")}, nil},
	{"announce", "02 80 00 00 00000000 00000100 000000000000000000000000", pcpResponse{Op: 0, Epoch: 256}, nil},
	{"map with an option", "02 81 00 00 00001c20 0000002a 000000000000000000000000" + pcpNonceHex + "11 000000 0fa0 c350" + pcpV4ExtHex + "01 00 0010" + pcpV4PeerHex,
		pcpResponse{Op: 1, Lifetime: 7200, Epoch: 42, Nonce: [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, Proto: 17, InternalPort: 4000, ExternalPort: 50000, ExternalIP: netip.MustParseAddr("11.45.67.1")}, nil},
	{"not authorized", "02 81 00 02 0000001e 0000002a 000000000000000000000000" + pcpNonceHex + "11 000000 0fa0 0000" + pcpV4ExtHex,
		pcpResponse{Op: 1, Result: 2, Lifetime: 30, Epoch: 42, Nonce: [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, Proto: 17, InternalPort: 4000, ExternalIP: netip.MustParseAddr("11.45.67.1")}, ErrRefused},
	{"unsupp version header only", "02 81 00 01 00000000 0000002a 000000000000000000000000", pcpResponse{Op: 1, Result: 1, Epoch: 42}, ErrUnsupported},
	{"unsupp opcode", "02 82 00 04 00000000 0000002a 000000000000000000000000", pcpResponse{Op: 2, Result: 4, Epoch: 42}, ErrUnsupported},
	{"nat-pmp answer", "00 81 0001 00000003 0fa0 0000 00000000", pcpResponse{}, ErrUnsupported},
	{"short", "02 81 00 00 00001c20", pcpResponse{}, ErrMalformed},
	{"not multiple of 4", "02 80 00 00 00000000 00000100 000000000000000000000000 00", pcpResponse{}, ErrMalformed},
	{"request", "02 01 0000 00001c20 00000000000000000000ffff0a01000a", pcpResponse{}, ErrMalformed},
	{"version 1", "01 81 00 00 00001c20 0000002a 000000000000000000000000", pcpResponse{}, ErrMalformed},
	{"map truncated", "02 81 00 00 00001c20 0000002a 000000000000000000000000" + pcpNonceHex + "11 000000", pcpResponse{Op: 1, Lifetime: 7200, Epoch: 42}, ErrMalformed},
	{"opcode 5", "02 85 00 00 00001c20 0000002a 000000000000000000000000", pcpResponse{Op: 5, Lifetime: 7200, Epoch: 42}, ErrMalformed},
}

func TestParsePCPResponse(t *testing.T) {
	for _, tc := range pcpTable {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parsePCPResponse(unhex(t, tc.in))
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func FuzzParsePCPResponse(f *testing.F) {
	for _, tc := range pcpTable {
		f.Add(unhex(f, tc.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parsePCPResponse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrRefused) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if r.Result != 0 || r.Op > 2 || len(b) < pcpHeaderLen || len(b)%4 != 0 || len(b) > pcpMaxLen {
			t.Fatalf("accepted %x as %+v", b, r)
		}
		if r.Op == pcpOpMap && len(b) < pcpHeaderLen+pcpMapLen || r.Op == pcpOpPeer && len(b) < pcpHeaderLen+pcpPeerLen {
			t.Fatalf("accepted a short payload %x as %+v", b, r)
		}
	})
}

func TestEpoch(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	for _, tc := range []struct {
		name      string
		e0, e1    uint32
		elapsed   time.Duration
		wantReset bool
	}{
		{"steady", 100, 160, time.Minute, false},
		{"slightly slow server", 100, 155, time.Minute, false},
		{"restart: epoch went back", 1000, 5, time.Minute, true},
		{"server lost time", 100, 110, time.Minute, true},
		{"server jumped ahead", 100, 1000, time.Minute, true},
		{"same second", 100, 100, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e epochState
			if e.update(tc.e0, t0) {
				t.Fatal("the first epoch counted as a reset")
			}
			if got := e.update(tc.e1, t0.Add(tc.elapsed)); got != tc.wantReset {
				t.Fatalf("reset = %v, want %v", got, tc.wantReset)
			}
		})
	}
}

func TestParseRouteTable(t *testing.T) {
	const table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t0000010A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
		"eth1\t00000000\t0200010A\t0003\t0\t0\t200\t00000000\t0\t0\t0\n" +
		"eth0\t00000000\t0100010A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n" +
		"eth2\t00000000\t0300010A\t0001\t0\t0\t0\t00000000\t0\t0\t0\n"
	got, err := parseRouteTable([]byte(table))
	if err != nil {
		t.Fatal(err)
	}
	// Little-endian hosts print 10.1.0.1 as 0100010A; this test runs on
	// little-endian CI machines (amd64, arm64).
	if want := netip.MustParseAddr("10.1.0.1"); got != want {
		t.Fatalf("gateway %v, want %v (the lowest metric)", got, want)
	}
	if _, err := parseRouteTable([]byte(table[:strings.Index(table, "eth1")])); !errors.Is(err, ErrNoDefaultRoute) {
		t.Fatalf("no default route: %v", err)
	}
}

var ssdpTable = []struct {
	name, in, st, want string
	err                error
}{
	{"miniupnpd", "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: " + stIGDv2 + "\r\nUSN: uuid:3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b::" + stIGDv2 +
		"\r\nEXT:\r\nSERVER: Debian/6.18 UPnP/1.1 MiniUPnPd/2.3.1\r\nLOCATION: http://10.1.0.1:36807/rootDesc.xml\r\n\r\n",
		stIGDv2, "http://10.1.0.1:36807/rootDesc.xml", nil},
	{"lower-case headers", "HTTP/1.1 200 OK\r\nst: " + stIGDv1 + "\r\nlocation: http://192.168.1.1:5000/desc.xml\r\n\r\n", stIGDv1, "http://192.168.1.1:5000/desc.xml", nil},
	{"other ST", "HTTP/1.1 200 OK\r\nST: " + stIGDv1 + "\r\nLOCATION: http://10.1.0.1:1/x\r\n\r\n", stIGDv2, "", ErrMalformed},
	{"not 200", "HTTP/1.1 404 Not Found\r\nST: " + stIGDv2 + "\r\nLOCATION: http://10.1.0.1:1/x\r\n\r\n", stIGDv2, "", ErrMalformed},
	{"https", "HTTP/1.1 200 OK\r\nST: " + stIGDv2 + "\r\nLOCATION: https://10.1.0.1:1/x\r\n\r\n", stIGDv2, "", ErrMalformed},
	{"no location", "HTTP/1.1 200 OK\r\nST: " + stIGDv2 + "\r\n\r\n", stIGDv2, "", ErrMalformed},
	{"notify", "NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\r\n", stIGDv2, "", ErrMalformed},
	{"garbage", "\x00\x01\x02", stIGDv2, "", ErrMalformed},
}

func TestParseSSDPResponse(t *testing.T) {
	for _, tc := range ssdpTable {
		t.Run(tc.name, func(t *testing.T) {
			u, err := parseSSDPResponse([]byte(tc.in), tc.st)
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if err == nil && u.String() != tc.want {
				t.Fatalf("location %s, want %s", u, tc.want)
			}
		})
	}
}

func FuzzParseSSDPResponse(f *testing.F) {
	for _, tc := range ssdpTable {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := parseSSDPResponse(b, stIGDv2)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if u.Scheme != "http" || u.Host == "" {
			t.Fatalf("accepted location %s", u)
		}
	})
}
