package proxyheader

import (
	"bufio"
	"bytes"
	"errors"
	"testing"

	proxyproto "github.com/pires/go-proxyproto"
)

func TestBuildDecodes(t *testing.T) {
	cases := []struct {
		version  string
		network  Network
		src, dst string
		proto    proxyproto.AddressFamilyAndProtocol
	}{
		{"v1", Stream, "192.0.2.7:40000", "127.0.0.1:6000", proxyproto.TCPv4},
		{"v2", Stream, "192.0.2.7:40000", "127.0.0.1:6000", proxyproto.TCPv4},
		{"v1", Stream, "[2001:db8::1]:1", "[::1]:6000", proxyproto.TCPv6},
		{"v2", Stream, "[2001:db8::1]:1", "[::1]:6000", proxyproto.TCPv6},
		{"v2", Datagram, "192.0.2.7:5353", "127.0.0.1:6001", proxyproto.UDPv4},
		{"v2", Stream, "[::ffff:192.0.2.7]:9", "[::ffff:127.0.0.1]:6000", proxyproto.TCPv4},
	}
	for _, c := range cases {
		b, err := Build(c.version, c.network, c.src, c.dst)
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		h, err := proxyproto.Read(bufio.NewReader(bytes.NewReader(append(b, "payload"...))))
		if err != nil {
			t.Fatalf("%v: decode: %v", c, err)
		}
		if h.Command != proxyproto.PROXY || h.TransportProtocol != c.proto {
			t.Errorf("%v: command %v proto %v", c, h.Command, h.TransportProtocol)
		}
		if got, want := h.SourceAddr.String(), unmapped(c.src); got != want {
			t.Errorf("%v: source %s, want %s", c, got, want)
		}
		if got, want := h.DestinationAddr.String(), unmapped(c.dst); got != want {
			t.Errorf("%v: destination %s, want %s", c, got, want)
		}
	}
}

func unmapped(s string) string {
	switch s {
	case "[::ffff:192.0.2.7]:9":
		return "192.0.2.7:9"
	case "[::ffff:127.0.0.1]:6000":
		return "127.0.0.1:6000"
	}
	return s
}

func TestBuildUnknownAddress(t *testing.T) {
	b, err := Build("v1", Stream, "visitor alice.c1", "")
	if err != nil || string(b) != "PROXY UNKNOWN\r\n" {
		t.Fatalf("v1 unknown: %q, %v", b, err)
	}
	b, err = Build("v2", Stream, "visitor alice.c1", "")
	if err != nil {
		t.Fatal(err)
	}
	h, err := proxyproto.Read(bufio.NewReader(bytes.NewReader(b)))
	if err != nil || h.Command != proxyproto.LOCAL {
		t.Fatalf("v2 unknown: %+v, %v", h, err)
	}
}

func TestBuildBadVersion(t *testing.T) {
	for _, c := range []struct {
		v string
		n Network
	}{{"v3", Stream}, {"", Stream}, {"V1", Stream}, {"v1", Datagram}} {
		if _, err := Build(c.v, c.n, "127.0.0.1:1", "127.0.0.1:2"); !errors.Is(err, ErrVersion) {
			t.Errorf("Build(%q, %v) = %v, want ErrVersion", c.v, c.n, err)
		}
	}
}
