package xtcp

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func mustCand(s string) Candidate {
	kind, addr, _ := strings.Cut(s, " ")
	var k CandidateKind
	if err := k.UnmarshalText([]byte(kind)); err != nil {
		panic(err)
	}
	return Candidate{Addr: netip.MustParseAddrPort(addr), Kind: k}
}

func cands(ss ...string) []Candidate {
	out := make([]Candidate, 0, len(ss))
	for _, s := range ss {
		out = append(out, mustCand(s))
	}
	return out
}

func TestOrderCandidates(t *testing.T) {
	local := []netip.Prefix{netip.MustParsePrefix("10.1.0.5/24"), netip.MustParsePrefix("fd00:1::5/64")}
	tests := []struct {
		name   string
		remote []Candidate
		want   []Candidate
	}{
		{"empty", nil, []Candidate{}},
		{
			"tiers",
			cands("predicted 203.0.113.7:4001", "srflx 203.0.113.7:4000", "host 192.168.1.9:4000",
				"host 10.1.0.10:4000", "host 198.51.100.2:4000", "host [fd00:1::10]:4000"),
			cands("host 10.1.0.10:4000", "host [fd00:1::10]:4000", "host 192.168.1.9:4000",
				"srflx 203.0.113.7:4000", "host 198.51.100.2:4000", "predicted 203.0.113.7:4001"),
		},
		{
			"mapped after private hosts, before reflexive and predicted",
			cands("predicted 203.0.113.7:4001", "srflx 203.0.113.7:4000", "mapped 198.51.100.3:31000",
				"host 10.1.0.10:4000", "mapped 203.0.113.7:31000"),
			cands("host 10.1.0.10:4000", "mapped 198.51.100.3:31000", "mapped 203.0.113.7:31000",
				"srflx 203.0.113.7:4000", "predicted 203.0.113.7:4001"),
		},
		{
			"a mapped port equal to the srflx one is kept as mapped",
			cands("srflx 203.0.113.7:4000", "mapped 203.0.113.7:4000"),
			cands("mapped 203.0.113.7:4000"),
		},
		{
			"stable within a tier",
			cands("srflx 203.0.113.9:1", "srflx 203.0.113.7:1", "prflx 203.0.113.8:1", "host 172.16.0.3:1", "host 192.168.0.3:1"),
			cands("host 172.16.0.3:1", "host 192.168.0.3:1", "srflx 203.0.113.9:1", "srflx 203.0.113.7:1", "prflx 203.0.113.8:1"),
		},
		{
			"dedupe keeps the best tier",
			cands("srflx 10.1.0.10:4000", "host 10.1.0.10:4000", "predicted 203.0.113.7:4000", "srflx 203.0.113.7:4000"),
			cands("host 10.1.0.10:4000", "srflx 203.0.113.7:4000"),
		},
		{
			"mapped addresses are unmapped and deduped",
			cands("host [::ffff:10.1.0.10]:4000", "host 10.1.0.10:4000"),
			cands("host 10.1.0.10:4000"),
		},
		{
			"unusable dropped",
			cands("host 0.0.0.0:4000", "host 10.1.0.10:0", "host [fe80::1]:4000", "host 224.0.0.1:4000",
				"host 255.255.255.255:1", "srflx 203.0.113.7:4000"),
			cands("srflx 203.0.113.7:4000"),
		},
		{
			"loopback kept as private",
			cands("srflx 203.0.113.7:4000", "host 127.0.0.1:4000"),
			cands("host 127.0.0.1:4000", "srflx 203.0.113.7:4000"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := OrderCandidates(local, tt.remote)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
		})
	}
	// Without local prefixes a private host candidate is still LAN-first.
	got := OrderCandidates(nil, cands("srflx 203.0.113.7:4000", "host 10.1.0.10:4000"))
	if want := cands("host 10.1.0.10:4000", "srflx 203.0.113.7:4000"); !reflect.DeepEqual(got, want) {
		t.Errorf("no local: got %v want %v", got, want)
	}
}

func TestCandidateJSON(t *testing.T) {
	in := cands("host 10.1.0.10:4000", "srflx [2001:db8::1]:5000", "predicted 203.0.113.7:4001", "prflx 198.51.100.1:9")
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	const want = `[{"addr":"10.1.0.10:4000","kind":"host"},{"addr":"[2001:db8::1]:5000","kind":"srflx"},` +
		`{"addr":"203.0.113.7:4001","kind":"predicted"},{"addr":"198.51.100.1:9","kind":"prflx"}]`
	if string(b) != want {
		t.Fatalf("got %s\nwant %s", b, want)
	}
	var out []Candidate
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip: %v != %v", out, in)
	}
	for _, bad := range []string{
		`{"addr":"10.1.0.10:4000","kind":"relay"}`,
		`{"addr":"10.1.0.10:4000","kind":1}`,
		`{"addr":"10.1.0.10","kind":"host"}`,
		`{"addr":"example.com:4000","kind":"host"}`,
	} {
		var c Candidate
		if err := json.Unmarshal([]byte(bad), &c); err == nil {
			t.Errorf("%s: accepted as %v", bad, c)
		}
	}
	if _, err := json.Marshal(Candidate{Addr: netip.MustParseAddrPort("10.0.0.1:1")}); err == nil {
		t.Error("marshalled a zero kind")
	}
}

func TestSessionIDText(t *testing.T) {
	id := NewSessionID()
	if id.IsZero() {
		t.Fatal("zero random ID")
	}
	b, _ := json.Marshal(id)
	var back SessionID
	if err := json.Unmarshal(b, &back); err != nil || back != id {
		t.Fatalf("round trip %s: %v %v", b, back, err)
	}
	for _, bad := range []string{"", "00", strings.Repeat("g", 32), strings.Repeat("0", 34)} {
		if _, err := ParseSessionID(bad); err == nil {
			t.Errorf("ParseSessionID(%q) accepted", bad)
		}
	}
	var r Role
	if err := r.UnmarshalText([]byte("owner")); err != nil || r != RoleOwner {
		t.Fatal(r, err)
	}
	if err := r.UnmarshalText([]byte("Owner")); err == nil {
		t.Fatal("role is case-sensitive")
	}
}

func TestHostCandidates(t *testing.T) {
	cs, err := HostCandidates(4000)
	if err != nil {
		t.Fatal(err)
	}
	seen6 := false
	for _, c := range cs {
		a := c.Addr.Addr()
		if c.Kind != Host || c.Addr.Port() != 4000 {
			t.Errorf("%v: wrong kind or port", c)
		}
		if a.IsLoopback() || a.IsLinkLocalUnicast() || a.Is4In6() {
			t.Errorf("%v: should be left out", c)
		}
		if a.Is6() {
			seen6 = true
		} else if seen6 {
			t.Errorf("%v: IPv4 after IPv6", c)
		}
	}
	t.Logf("host candidates: %v", cs)
}

func TestClassifyPath(t *testing.T) {
	for s, want := range map[string]PathKind{
		"10.0.0.1:1": PathLAN, "192.168.1.1:1": PathLAN, "127.0.0.1:1": PathLAN, "[fd00::1]:1": PathLAN,
		"[::ffff:10.0.0.1]:1": PathLAN, "203.0.113.1:1": PathInternet, "[2001:db8::1]:1": PathInternet,
	} {
		if got := ClassifyPath(netip.MustParseAddrPort(s)); got != want {
			t.Errorf("%s: %v, want %v", s, got, want)
		}
	}
}
