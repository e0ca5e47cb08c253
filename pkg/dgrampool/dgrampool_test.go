package dgrampool

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/hopproxy/hop/pkg/protocol"
)

func TestRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, Small - 2, Small - 1, Small, 1400, protocol.MaxDatagram} {
		d := bytes.Repeat([]byte{byte(n)}, n)
		if n > Small-2 && cap(*Framed(d)) != Large {
			t.Fatalf("%d bytes framed in a small buffer", n)
		}
		f := Framed(d)
		want, _ := protocol.AppendDatagram(nil, d)
		if !bytes.Equal(*f, want) {
			t.Fatalf("%d: framing differs from protocol.AppendDatagram", n)
		}
		bp, err := ReadDatagram(bytes.NewReader(*f))
		if err != nil || !bytes.Equal(*bp, d) {
			t.Fatalf("%d: read %d bytes, %v", n, len(*bp), err)
		}
		Put(bp)
		Put(f)
	}
}

func TestReadDatagramErrors(t *testing.T) {
	if _, err := ReadDatagram(bytes.NewReader([]byte{0xff, 0xff})); !errors.Is(err, protocol.ErrFrameTooLarge) {
		t.Fatalf("oversize: %v", err)
	}
	if _, err := ReadDatagram(bytes.NewReader([]byte{0, 5, 'a'})); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated: %v", err)
	}
	if _, err := ReadDatagram(bytes.NewReader(nil)); !errors.Is(err, io.EOF) {
		t.Fatalf("empty: %v", err)
	}
}

// FuzzReadDatagram: any bytes; never a panic, never a datagram over the
// maximum, and the datagrams read are what protocol.ReadDatagram reads.
func FuzzReadDatagram(f *testing.F) {
	f.Add([]byte{0, 3, 'a', 'b', 'c', 0, 0})
	f.Add([]byte{0xff, 0xff})
	f.Add([]byte{0, 5, 'a'})
	f.Fuzz(func(t *testing.T, in []byte) {
		r1, r2 := bytes.NewReader(in), bytes.NewReader(in)
		ref := make([]byte, protocol.MaxDatagram)
		for {
			bp, err := ReadDatagram(r1)
			n, rerr := protocol.ReadDatagram(r2, ref)
			if (err == nil) != (rerr == nil) {
				t.Fatalf("pooled %v, protocol %v", err, rerr)
			}
			if err != nil {
				return
			}
			if !bytes.Equal(*bp, ref[:n]) {
				t.Fatal("different datagrams")
			}
			Put(bp)
		}
	})
}
