package visit

import (
	"bytes"
	"net"
	"testing"
)

// TestVisitorAddressSealed: the visitor's local address reaches the owner,
// and the relay never sees it in the clear.
func TestVisitorAddressSealed(t *testing.T) {
	for _, src := range []string{"127.0.0.1:54321 127.0.0.1:6022", ""} {
		tp := &tap{}
		vc, oc := tp.relayed()
		type res struct {
			src string
			err error
		}
		done := make(chan res, 1)
		go func() {
			sc, got, err := OwnerFrom(oc, "s3cret-key-1234", ident)
			if err == nil {
				sc.Close()
			} else {
				oc.Close()
			}
			done <- res{got, err}
		}()
		sc, err := VisitorFrom(vc, nil, "s3cret-key-1234", ident, src)
		if err != nil {
			t.Fatal(err)
		}
		r := <-done
		sc.Close()
		tp.wg.Wait()
		if r.err != nil || r.src != src {
			t.Fatalf("owner got %q, %v; want %q", r.src, r.err, src)
		}
		if src != "" && bytes.Contains(tp.all(), []byte("54321")) {
			t.Fatal("the relay saw the visitor's address")
		}
	}
}

// TestVisitorAddressTampered: a relay that changes the sealed address
// fails the handshake at the owner.
func TestVisitorAddressTampered(t *testing.T) {
	vc, vr := net.Pipe()
	oc, or := net.Pipe()
	go func() { // relay: flips the last byte before the newline of the second frame (VisitConfirm)
		buf := make([]byte, 4096)
		for n := 1; ; n++ {
			k, err := vr.Read(buf)
			if err != nil {
				or.Close()
				return
			}
			if n == 2 {
				i := bytes.LastIndex(buf[:k], []byte(`"src":"`))
				if i >= 0 {
					buf[i+len(`"src":"`)] ^= 1
				}
			}
			if _, err := or.Write(buf[:k]); err != nil {
				return
			}
		}
	}()
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := or.Read(buf)
			if err != nil {
				vr.Close()
				return
			}
			if _, err := vr.Write(buf[:k]); err != nil {
				return
			}
		}
	}()
	errc := make(chan error, 1)
	go func() {
		_, _, err := OwnerFrom(oc, "s3cret-key-1234", ident)
		oc.Close()
		errc <- err
	}()
	sc, err := VisitorFrom(vc, nil, "s3cret-key-1234", ident, "127.0.0.1:54321 127.0.0.1:6022")
	if err == nil {
		defer sc.Close()
	}
	if err := <-errc; err == nil {
		t.Fatal("the owner accepted a tampered address")
	}
	vc.Close()
}
