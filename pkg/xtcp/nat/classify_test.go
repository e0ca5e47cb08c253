package nat

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

var (
	srvP    = netip.MustParseAddrPort("192.0.2.1:3478")
	srvPort = netip.MustParseAddrPort("192.0.2.1:3479")
	srvAddr = netip.MustParseAddrPort("192.0.2.2:3478")
	srvBoth = netip.MustParseAddrPort("192.0.2.2:3479")
)

func pub(port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("203.0.113.5"), port)
}

// probes builds the probe list towards dests with the given public ports,
// 0 meaning unanswered.
func probes(dests []netip.AddrPort, ports ...uint16) []Probe {
	var ps []Probe
	for i, d := range dests {
		p := Probe{To: d}
		if ports[i] != 0 {
			p.Mapped = pub(ports[i])
		}
		ps = append(ps, p)
	}
	return ps
}

var (
	fullDests = []netip.AddrPort{srvP, srvPort, srvAddr, srvBoth}
	portDests = []netip.AddrPort{srvP, srvPort}
	addrDests = []netip.AddrPort{srvP, srvAddr}
)

func TestClassifyMapping(t *testing.T) {
	tests := []struct {
		name    string
		other   netip.AddrPort
		offered bool
		probes  []Probe
		want    Behavior
		note    string // substring; "" means no note
	}{
		{"EIM full", srvBoth, true, probes(fullDests, 5000, 5000, 5000, 5000), EndpointIndependent, ""},
		{"ADM full", srvBoth, true, probes(fullDests, 5000, 5000, 5001, 5001), AddressDependent, ""},
		{"APDM full", srvBoth, true, probes(fullDests, 5000, 5001, 5002, 5003), AddressAndPortDependent, ""},
		{"APDM random", srvBoth, true, probes(fullDests, 5000, 61234, 40211, 33333), AddressAndPortDependent, ""},
		{"EIM, alt port silent", srvBoth, true, probes(fullDests, 5000, 0, 5000, 5000), EndpointIndependent, ""},
		{"ADM, alt port silent", srvBoth, true, probes(fullDests, 5000, 0, 5001, 5001), AddressDependent, ""},
		{"address changes, port probe lost", srvBoth, true, probes(fullDests, 5000, 0, 5001, 0), Unknown, "at least address-dependent"},
		{"address changes, both-changed probe lost", srvBoth, true, probes(fullDests, 5000, 0, 0, 5001), Unknown, "at least address-dependent"},
		{"alt address silent, ports same", srvBoth, true, probes(fullDests, 5000, 5000, 0, 0), Unknown, "did not answer"},
		{"alt address silent, ports differ", srvBoth, true, probes(fullDests, 5000, 5001, 0, 0), AddressAndPortDependent, ""},
		{"all alternates silent", srvBoth, true, probes(fullDests, 5000, 0, 0, 0), Unknown, "did not answer"},
		{"port only, same", srvPort, true, probes(portDests, 5000, 5000), EndpointIndependent, "no alternate address"},
		{"port only, differs", srvPort, true, probes(portDests, 5000, 5001), AddressAndPortDependent, ""},
		{"addr only, same", srvAddr, true, probes(addrDests, 5000, 5000), EndpointIndependent, ""},
		{"addr only, differs", srvAddr, true, probes(addrDests, 5000, 5001), AddressAndPortDependent, "no alternate port"},
		{"addr only, silent", srvAddr, true, probes(addrDests, 5000, 0), Unknown, "did not answer"},
		{"no OTHER-ADDRESS", netip.AddrPort{}, false, probes(fullDests[:1], 5000), Unknown, "no OTHER-ADDRESS"},
		{"unusable OTHER-ADDRESS", netip.AddrPort{}, true, probes(fullDests[:1], 5000), Unknown, "not an endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, note := classifyMapping(srvP, tt.other, tt.offered, tt.probes)
			if got != tt.want || (tt.note == "") != (note == "") || !strings.Contains(note, tt.note) {
				t.Fatalf("got %v %q, want %v with note %q", got, note, tt.want, tt.note)
			}
		})
	}
}

func TestClassifyFiltering(t *testing.T) {
	ok := result{outcome: answered}
	quiet := result{outcome: silent}
	no := result{outcome: refused, resp: response{code: 420, reason: "cannot change IP"}}
	odd := result{outcome: inconclusive}
	gone := result{outcome: lost}
	none := result{}
	fullUp := probes(fullDests, 5000, 5000, 5000, 5000)
	tests := []struct {
		name         string
		other        netip.AddrPort
		ip, port     result
		probes       []Probe
		want         Behavior
		note         string
		offered      bool
		overrideNote bool
	}{
		{"EIF", srvBoth, ok, none, fullUp, EndpointIndependent, "", true, false},
		{"ADF", srvBoth, quiet, ok, fullUp, AddressDependent, "", true, false},
		{"APDF", srvBoth, quiet, quiet, fullUp, AddressAndPortDependent, "", true, false},
		{"APDF, change IP refused", srvBoth, no, quiet, fullUp, AddressAndPortDependent, "", true, false},
		{"ADF, alt address never answered", srvBoth, quiet, ok, probes(fullDests, 5000, 5000, 0, 0), AddressDependent, "never answered", true, false},
		{"ADF, change IP refused", srvBoth, no, ok, fullUp, AddressDependent, "420 cannot change IP", true, false},
		{"ADF, change IP ignored", srvBoth, odd, ok, fullUp, AddressDependent, "ignored", true, false},
		{"silence but alt port dead", srvBoth, quiet, quiet, probes(fullDests, 5000, 0, 5000, 5000), Unknown, "proves nothing", true, false},
		{"change port refused", srvBoth, quiet, no, fullUp, Unknown, "refused", true, false},
		{"ADF, change IP lost", srvBoth, gone, ok, fullUp, AddressDependent, "lost on the way", true, false},
		{"change IP and port lost", srvBoth, gone, gone, fullUp, Unknown, "lost", true, false},
		{"change IP silent, change port lost", srvBoth, quiet, gone, fullUp, Unknown, "lost", true, false},
		{"APDF, change IP lost", srvBoth, gone, quiet, fullUp, AddressAndPortDependent, "", true, false},
		{"port only: lost", srvPort, none, gone, probes(portDests, 5000, 5000), Unknown, "lost", true, false},
		{"addr only: lost", srvAddr, gone, none, probes(addrDests, 5000, 5000), Unknown, "lost", true, false},
		{"change port ignored", srvBoth, quiet, odd, fullUp, Unknown, "ignored", true, false},
		{"port only: answered", srvPort, none, ok, probes(portDests, 5000, 5000), AddressDependent, "no alternate address", true, false},
		{"port only: silent", srvPort, none, quiet, probes(portDests, 5000, 5000), AddressAndPortDependent, "", true, false},
		{"port only: silent, port dead", srvPort, none, quiet, probes(portDests, 5000, 0), Unknown, "proves nothing", true, false},
		{"addr only: answered", srvAddr, ok, none, probes(addrDests, 5000, 5000), EndpointIndependent, "", true, false},
		{"addr only: silent", srvAddr, quiet, none, probes(addrDests, 5000, 5000), AddressAndPortDependent, "stricter", true, false},
		{"addr only: silent, addr dead", srvAddr, quiet, none, probes(addrDests, 5000, 0), Unknown, "proves nothing", true, false},
		{"addr only: refused", srvAddr, no, none, probes(addrDests, 5000, 5000), Unknown, "refused", true, false},
		{"no OTHER-ADDRESS", netip.AddrPort{}, none, none, probes(fullDests[:1], 5000), Unknown, "no OTHER-ADDRESS", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, note := classifyFiltering(srvP, tt.other, tt.offered, tt.ip, tt.port, tt.probes)
			if got != tt.want || (tt.note == "") != (note == "") || !strings.Contains(note, tt.note) {
				t.Fatalf("got %v %q, want %v with note %q", got, note, tt.want, tt.note)
			}
		})
	}
}

func TestResolveOther(t *testing.T) {
	server := netip.MustParseAddrPort("198.51.100.10:3478")
	ap := netip.MustParseAddrPort
	tests := []struct {
		name          string
		origin, other string
		want          string
	}{
		{"alternate address", "198.51.100.10:3478", "198.51.100.11:3479", "198.51.100.11:3479"},
		{"alternate port", "198.51.100.10:3478", "198.51.100.10:3479", "198.51.100.10:3479"},
		{"unspecified", "", "0.0.0.0:3479", "198.51.100.10:3479"},
		{"behind 1:1 NAT", "10.0.0.5:3478", "10.0.0.5:3479", "198.51.100.10:3479"},
		{"behind 1:1 NAT, second address", "10.0.0.5:3478", "10.0.0.6:3479", "10.0.0.6:3479"},
		{"itself", "198.51.100.10:3478", "198.51.100.10:3478", ""},
		{"port 0", "", "198.51.100.11:0", ""},
		{"other family", "", "[2001:db8::1]:3479", ""},
		{"absent", "198.51.100.10:3478", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r response
			if tt.origin != "" {
				r.origin = ap(tt.origin)
			}
			if tt.other != "" {
				r.other = ap(tt.other)
			}
			got := resolveOther(server, r)
			if (tt.want == "" && got.IsValid()) || (tt.want != "" && got != ap(tt.want)) {
				t.Fatalf("got %v, want %q", got, tt.want)
			}
		})
	}
}

func TestPredictPorts(t *testing.T) {
	tests := []struct {
		name    string
		mapping Behavior
		ports   []uint16 // public ports of the full probe list, 0 unanswered
		n       int
		want    []uint16
	}{
		{"EIM", EndpointIndependent, []uint16{5000, 5000, 5000, 5000}, 3, []uint16{5000}},
		{"sequential", AddressAndPortDependent, []uint16{5000, 5001, 5002, 5003}, 3, []uint16{5004, 5005, 5006}},
		{"step 2", AddressAndPortDependent, []uint16{5000, 5002, 5004, 5006}, 2, []uint16{5008, 5010}},
		{"downwards", AddressAndPortDependent, []uint16{5000, 4999, 4998, 4997}, 2, []uint16{4996, 4995}},
		{"ADM", AddressDependent, []uint16{5000, 5000, 5003, 5003}, 2, []uint16{5006, 5009}},
		{"skips silent probe", AddressAndPortDependent, []uint16{5000, 0, 5001, 5002}, 1, []uint16{5003}},
		{"random", AddressAndPortDependent, []uint16{5000, 61234, 40211, 33333}, 3, nil},
		{"uneven", AddressAndPortDependent, []uint16{5000, 5001, 5003, 5004}, 3, nil},
		{"step too big", AddressAndPortDependent, []uint16{5000, 5100, 5200, 5300}, 3, nil},
		{"top of range", AddressAndPortDependent, []uint16{65532, 65533, 65534, 65535}, 3, nil},
		{"near top", AddressAndPortDependent, []uint16{65531, 65532, 65533, 65534}, 3, []uint16{65535}},
		{"unknown, one probe", Unknown, []uint16{5000}, 3, nil},
		{"n zero", EndpointIndependent, []uint16{5000, 5000}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := probes(fullDests[:len(tt.ports)], tt.ports...)
			r := &Report{Mapped: ps[0].Mapped, Mapping: tt.mapping, Probes: ps, Deltas: deltas(ps)}
			if got := r.PredictPorts(tt.n); !slices.Equal(got, tt.want) {
				t.Fatalf("PredictPorts(%d) = %v, want %v (deltas %v)", tt.n, got, tt.want, r.Deltas)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	for _, tt := range []struct {
		m, f Behavior
		want string
	}{
		{EndpointIndependent, EndpointIndependent, "EIM/EIF"},
		{EndpointIndependent, AddressAndPortDependent, "EIM/APDF"},
		{AddressDependent, AddressDependent, "ADM/ADF"},
		{AddressAndPortDependent, Unknown, "APDM/?F"},
		{Unknown, Behavior(42), "?M/?F"},
	} {
		if got := Classify(tt.m, tt.f); got != tt.want {
			t.Errorf("Classify(%v, %v) = %q, want %q", tt.m, tt.f, got, tt.want)
		}
	}
	if s := Behavior(42).String(); s != "Behavior(42)" {
		t.Errorf("String = %q", s)
	}
	if s := AddressAndPortDependent.String(); s != "address-and-port-dependent" {
		t.Errorf("String = %q", s)
	}
}

func TestExplain(t *testing.T) {
	local := netip.MustParseAddrPort("10.1.0.10:5000")
	tests := []struct {
		name string
		r    Report
		want []string
		not  []string
	}{
		{"EIM/APDF behind NAT", Report{LocalAddr: local, Mapped: pub(5000), PortPreserved: true,
			Mapping: EndpointIndependent, Filtering: AddressAndPortDependent},
			[]string{"behind a NAT", "kept the local port", "same public address and port for every destination",
				"direct P2P works with almost any peer", "exact address and port", "send at the same time"},
			[]string{"random", "Caveat"}},
		{"symmetric random", Report{LocalAddr: local, Mapped: pub(40211), Mapping: AddressAndPortDependent,
			Filtering: AddressAndPortDependent, Probes: probes(fullDests, 40211, 61234, 33333, 5555), Deltas: []int{1, 2, 3}},
			[]string{"changed the local port 5000 to 40211", "'symmetric' NAT", "relays through hops", "look random"},
			nil},
		{"sequential", Report{LocalAddr: local, Mapped: pub(7000), Mapping: AddressAndPortDependent,
			Filtering: AddressAndPortDependent, Probes: probes(portDests, 7000, 7001), Deltas: []int{1}},
			[]string{"steps of 1", "port 7002", "a guess from a single step"}, nil},
		{"no NAT", Report{LocalAddr: pub(5000), Mapped: pub(5000), PortPreserved: true,
			Mapping: EndpointIndependent, Filtering: EndpointIndependent},
			[]string{"No NAT", "Nothing filters incoming packets"}, []string{"behind a NAT", "Your NAT"}},
		{"partial", Report{LocalAddr: local, Mapped: pub(5000), PortPreserved: true,
			Mapping: EndpointIndependent, MappingNote: "only the destination port could be varied",
			Filtering: AddressDependent, FilteringNote: "it could also be endpoint-independent"},
			[]string{"Caveat on the mapping: only the destination port", "Caveat on the filtering: it could also", "address-dependent filtering"},
			nil},
		{"unknown", Report{LocalAddr: local, Mapped: pub(5000), PortPreserved: true,
			MappingNote: "the server offers no alternate address", FilteringNote: "the server offers no alternate address"},
			[]string{"could not be tested: the server offers", "Which senders your NAT lets in could not be tested"},
			[]string{"Caveat", "random"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.r.Explain()
			for _, w := range tt.want {
				if !strings.Contains(e, w) {
					t.Errorf("missing %q in:\n%s", w, e)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(e, w) {
					t.Errorf("unexpected %q in:\n%s", w, e)
				}
			}
		})
	}
}
