package transport

import (
	"crypto/tls"
	"errors"
	"net"
	"testing"
)

func handshake(t *testing.T, ccfg *tls.Config) error {
	t.Helper()
	scfg, _, err := ServerTLS("", "")
	if err != nil {
		t.Fatal(err)
	}
	c, s := net.Pipe()
	defer c.Close()
	defer s.Close()
	go tls.Server(s, scfg).Handshake()
	return tls.Client(c, ccfg).Handshake()
}

func TestPin(t *testing.T) {
	scfg, fp, err := ServerTLS("", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(fp) != 64 {
		t.Fatalf("fingerprint %q", fp)
	}
	// Right pin: the server's certificate.
	c, s := net.Pipe()
	go tls.Server(s, scfg).Handshake()
	ccfg, _ := ClientTLS("", "", fp)
	if err := tls.Client(c, ccfg).Handshake(); err != nil {
		t.Fatalf("right pin refused: %v", err)
	}
	c.Close()
	s.Close()
	// Another server (a new self-signed certificate) does not match.
	if err := handshake(t, ccfg); !errors.Is(err, ErrCertPin) {
		t.Fatalf("wrong certificate: %v, want ErrCertPin", err)
	}
	// No pin, no CA: the handshake works (auth is done by package auth).
	open, _ := ClientTLS("", "", "")
	if err := handshake(t, open); err != nil {
		t.Fatal(err)
	}
}

func TestBindingDiffersPerSession(t *testing.T) {
	scfg, _, _ := ServerTLS("", "")
	ccfg, _ := ClientTLS("", "", "")
	var got [][]byte
	for range 2 {
		c, s := net.Pipe()
		ts := tls.Server(s, scfg)
		go ts.Handshake()
		tc := tls.Client(c, ccfg)
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		b, err := Binding(tc)
		if err != nil || len(b) != 32 {
			t.Fatalf("binding %x, %v", b, err)
		}
		got = append(got, b)
		c.Close()
		s.Close()
	}
	if string(got[0]) == string(got[1]) {
		t.Fatal("two TLS sessions share a channel binding")
	}
}

func TestCAFileErrors(t *testing.T) {
	if _, err := ClientTLS("", "/nonexistent/ca.pem", ""); err == nil {
		t.Fatal("missing CA file accepted")
	}
}
