package xtcp

import (
	"io"
	"testing"
)

// BenchmarkKCPThroughput moves 64 KiB per op through one yamux stream over
// KCP on loopback.
func BenchmarkKCPThroughput(b *testing.B) {
	vs, os, _, _ := kcpPair(b, SessionConfig{})
	done := make(chan int64, 1)
	go func() {
		st, err := os.Accept()
		if err != nil {
			done <- 0
			return
		}
		n, _ := io.Copy(io.Discard, st)
		done <- n
	}()
	st, err := vs.Open()
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := st.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	st.Close()
	if n := <-done; n != int64(b.N*len(chunk)) {
		b.Fatalf("received %d of %d bytes", n, b.N*len(chunk))
	}
}

// BenchmarkKCPRTT is one 64-byte ping-pong per op through a yamux stream
// over KCP on loopback.
func BenchmarkKCPRTT(b *testing.B) {
	vs, os, _, _ := kcpPair(b, SessionConfig{})
	go func() {
		st, err := os.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 64)
		for {
			if _, err := io.ReadFull(st, buf); err != nil {
				return
			}
			if _, err := st.Write(buf); err != nil {
				return
			}
		}
	}()
	st, err := vs.Open()
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	buf := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := st.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(st, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDatagram sends 1200-byte datagrams one way on loopback, each
// op waiting for its arrival.
func BenchmarkDatagram(b *testing.B) {
	vconn, oconn := listen(b), listen(b)
	sid := NewSessionID()
	v, err := NewDatagramPath(vconn, addrOf(oconn), testSecret, sid, RoleVisitor, DatagramConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	o, err := NewDatagramPath(oconn, addrOf(vconn), testSecret, sid, RoleOwner, DatagramConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	msg, buf := make([]byte, 1200), make([]byte, 2048)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := v.Send(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := o.Recv(buf); err != nil {
			b.Fatal(err)
		}
	}
}
