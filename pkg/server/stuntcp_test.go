package server

import (
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

// The control port answers a STUN Binding request over TCP with the
// connection's source and closes; a TLS client on the same port still
// completes its handshake (the first byte read to tell them apart is
// handed to TLS).
func TestSTUNOverTCP(t *testing.T) {
	s := runServer(t, nil)
	c := dialFrom(t, s, "127.0.0.1")
	c.SetDeadline(time.Now().Add(5 * time.Second))
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
	if _, err := c.Write(req.Raw); err != nil {
		t.Fatal(err)
	}
	resp, err := io.ReadAll(c) // the server closes after its answer
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	m := &stun.Message{Raw: resp}
	if err := m.Decode(); err != nil || m.Type != stun.BindingSuccess || m.TransactionID != req.TransactionID {
		t.Fatalf("answer %x (%v), want a Binding success for the request", resp, err)
	}
	var x stun.XORMappedAddress
	if err := x.GetFrom(m); err != nil {
		t.Fatal(err)
	}
	ip, _ := netip.AddrFromSlice(x.IP)
	if got, want := netip.AddrPortFrom(ip.Unmap(), uint16(x.Port)), c.LocalAddr().(*net.TCPAddr).AddrPort(); got != want {
		t.Errorf("XOR-MAPPED-ADDRESS %v, want the client's %v", got, want)
	}

	tc := tls.Client(dialFrom(t, s, "127.0.0.1"), &tls.Config{InsecureSkipVerify: true})
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS on the same port after the STUN check: %v", err)
	}
	tc.Close()
}
