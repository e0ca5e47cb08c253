package visit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/pake"
	"github.com/hopproxy/hop/pkg/protocol"
	"github.com/hopproxy/hop/pkg/seal"
)

// tap is a relay in the middle (what hops does with a visitor's stream):
// it copies both ways and records what it carried.
type tap struct {
	mu       sync.Mutex
	up, down bytes.Buffer // visitor → owner, owner → visitor
	wg       sync.WaitGroup
}

// relayed returns the visitor's and the owner's ends of a connection
// through t.
func (t *tap) relayed() (visitor, owner net.Conn) {
	v, vr := net.Pipe()
	o, or := net.Pipe()
	cp := func(dst, src net.Conn, rec *bytes.Buffer) {
		defer t.wg.Done()
		buf := make([]byte, 4096)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				t.mu.Lock()
				rec.Write(buf[:n])
				t.mu.Unlock()
				if _, err := dst.Write(buf[:n]); err != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		dst.Close()
		src.Close()
	}
	t.wg.Add(2)
	go cp(or, vr, &t.up)
	go cp(vr, or, &t.down)
	return v, o
}

func (t *tap) all() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append(append([]byte(nil), t.up.Bytes()...), t.down.Bytes()...)
}

var ident = Identity{Proxy: "ssh", ProxyType: "stcp", VisitorUser: "alice", VisitorID: "laptop", OwnerUser: "bob"}

type result struct {
	err  error
	data []byte
}

// run does one visit: the visitor sends msg and reads the answer; the owner
// (with its own secret and view of the identities) echoes one message.
func run(t *testing.T, tp *tap, vSecret, oSecret string, vID, oID Identity, msg []byte) (visitor, owner result) {
	t.Helper()
	vc, oc := tp.relayed()
	ownerDone := make(chan result, 1)
	go func() {
		sc, err := Owner(oc, oSecret, oID)
		if err != nil {
			oc.Close()
			ownerDone <- result{err: err}
			return
		}
		buf := make([]byte, len(msg))
		_, err = io.ReadFull(sc, buf)
		if err == nil {
			_, err = sc.Write(append([]byte("echo:"), buf...))
		}
		ownerDone <- result{err: err, data: buf}
		sc.Close()
	}()
	sc, err := Visitor(vc, nil, vSecret, vID)
	if err != nil {
		vc.Close()
		return result{err: err}, <-ownerDone
	}
	if _, err := sc.Write(msg); err != nil {
		return result{err: err}, <-ownerDone
	}
	got, err := io.ReadAll(sc)
	sc.Close()
	return result{err: err, data: got}, <-ownerDone
}

func TestVisitSealsEndToEnd(t *testing.T) {
	tp := &tap{}
	msg := []byte("GET /the-plaintext-hops-must-not-see HTTP/1.1")
	v, o := run(t, tp, "s3cret-key-1234", "s3cret-key-1234", ident, ident, msg)
	tp.wg.Wait()
	if o.err != nil || !bytes.Equal(o.data, msg) {
		t.Fatalf("owner: %q, %v", o.data, o.err)
	}
	// The owner closed without CloseWrite: the visitor gets its data, then
	// the truncation is reported, not a clean EOF.
	if !bytes.HasPrefix(v.data, []byte("echo:")) {
		t.Fatalf("visitor got %q, %v", v.data, v.err)
	}
	if bytes.Contains(tp.all(), []byte("plaintext-hops")) || bytes.Contains(tp.all(), []byte("echo:")) {
		t.Fatal("the relay saw plaintext")
	}
}

func TestWrongSecretOrImpostor(t *testing.T) {
	impostor := ident
	impostor.OwnerUser = "mallory" // same proxy name under another user
	otherVisitor := ident
	otherVisitor.VisitorID = "phone" // the server vouches for another client
	for _, tt := range []struct {
		name       string
		vSec, oSec string
		oID        Identity
	}{
		{"owner with the wrong secret", "right-secret", "wrong-secret", ident},
		{"visitor with the wrong secret", "wrong-secret", "right-secret", ident},
		{"impostor owner (another user)", "right-secret", "right-secret", impostor},
		{"visitor identity not what the server vouches", "right-secret", "right-secret", otherVisitor},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, o := run(t, &tap{}, tt.vSec, tt.oSec, ident, tt.oID, []byte("secret data"))
			if !errors.Is(v.err, ErrOwnerUnconfirmed) {
				t.Fatalf("visitor: %v, want ErrOwnerUnconfirmed", v.err)
			}
			if o.err == nil || o.data != nil {
				t.Fatalf("owner got %q, %v: it must get nothing", o.data, o.err)
			}
		})
	}
}

func TestFlippedByteEndsTheConnection(t *testing.T) {
	vc, vr := net.Pipe()
	oc, or := net.Pipe()
	go func() { // relay: passes the handshake, flips a byte of the first record
		buf := make([]byte, 4096)
		n := 0
		for {
			k, err := vr.Read(buf)
			if err != nil {
				or.Close()
				return
			}
			n++
			if n == 3 { // VisitHello, VisitConfirm, then data
				buf[k-1] ^= 0x80
			}
			or.Write(buf[:k])
		}
	}()
	go io.Copy(vr, or)
	ownerErr := make(chan error, 1)
	go func() {
		sc, err := Owner(oc, "k", ident)
		if err == nil {
			_, err = io.ReadAll(sc)
		}
		ownerErr <- err
	}()
	sc, err := Visitor(vc, nil, "k", ident)
	if err != nil {
		t.Fatal(err)
	}
	sc.Write([]byte("data"))
	if err := <-ownerErr; err == nil || !errors.Is(err, errAuth()) {
		t.Fatalf("owner: %v, want seal.ErrAuth", err)
	}
}

// TestCapturedHandshakeGivesNoOfflineCheck captures a visit as hops relays
// it and runs the offline attack of the v1 proof against it: there, a
// VisitAuth was HMAC-SHA256(secretKey, fields in clear), so a dictionary
// check found the secret. Now no field of the transcript is a function of
// the secret and public values alone: the dictionary, though it holds the
// right secret, confirms nothing.
func TestCapturedHandshakeGivesNoOfflineCheck(t *testing.T) {
	const secret = "hunter2-hunter2"
	tp := &tap{}
	v, o := run(t, tp, secret, secret, ident, ident, []byte("x"))
	tp.wg.Wait()
	if v.err != nil && v.data == nil || o.err != nil {
		t.Fatalf("visit failed: %v %v", v.err, o.err)
	}
	up, down := bytes.NewReader(tp.up.Bytes()), bytes.NewReader(tp.down.Bytes())
	hello, err := protocol.ReadAs[*protocol.VisitHello](up)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := protocol.ReadAs[*protocol.VisitAccept](down)
	if err != nil {
		t.Fatal(err)
	}
	conf, err := protocol.ReadAs[*protocol.VisitConfirm](up)
	if err != nil {
		t.Fatal(err)
	}
	fields := [][]byte{hello.SID, hello.Share, acc.Share, acc.Tag, conf.Tag}
	dictionary := []string{"password", "123456", "hunter2", secret, "letmein"}
	for _, guess := range dictionary {
		// The v1 check: an HMAC of the guess over the names and the
		// random bytes in clear.
		mac := hmac.New(sha256.New, []byte(guess))
		mac.Write([]byte("hop visit v1"))
		for _, s := range []string{ident.Proxy, ident.VisitorID} {
			mac.Write(binary.BigEndian.AppendUint16(nil, uint16(len(s))))
			mac.Write([]byte(s))
		}
		mac.Write(hello.SID)
		sum := mac.Sum(nil)
		for _, f := range fields {
			if bytes.Equal(f, sum) {
				t.Fatalf("guess %q checks offline against the transcript", guess)
			}
		}
		// The best an eavesdropper can do with CPace: play either side
		// with the guess against a captured share. Without the honest
		// parties' scalars its key differs even for the right guess.
		ch := ident.Channel(channelLabel)
		asOwner := pake.Start(pake.Responder, []byte(guess), ch, hello.SID, nil)
		if isk, err := asOwner.Finish(hello.Share, nil); err == nil && (pake.Verify(isk, pake.Responder, acc.Tag) || pake.Verify(isk, pake.Initiator, conf.Tag)) {
			t.Fatalf("guess %q confirmed offline", guess)
		}
		asVisitor := pake.Start(pake.Initiator, []byte(guess), ch, hello.SID, nil)
		if isk, err := asVisitor.Finish(acc.Share, nil); err == nil && (pake.Verify(isk, pake.Responder, acc.Tag) || pake.Verify(isk, pake.Initiator, conf.Tag)) {
			t.Fatalf("guess %q confirmed offline", guess)
		}
	}
}

func errAuth() error { return seal.ErrAuth }

// rwConn is a net.Conn reading from r and writing to w.
type rwConn struct {
	net.Conn
	r io.Reader
	w io.Writer
}

func (c rwConn) Read(b []byte) (int, error)      { return c.r.Read(b) }
func (c rwConn) Write(b []byte) (int, error)     { return c.w.Write(b) }
func (c rwConn) SetReadDeadline(time.Time) error { return nil }
func (c rwConn) Close() error                    { return nil }

// FuzzOwner and FuzzVisitor feed arbitrary bytes as the other side of the
// handshake: it fails with an error (it never confirms without the secret,
// never panics, never hangs).
func FuzzOwner(f *testing.F) {
	var seed bytes.Buffer
	protocol.WriteMsg(&seed, &protocol.VisitHello{SID: make([]byte, protocol.VisitSIDSize), Share: make([]byte, protocol.ShareSize)})
	protocol.WriteMsg(&seed, &protocol.VisitConfirm{Tag: make([]byte, protocol.TagSize)})
	f.Add(seed.Bytes())
	var withSrc bytes.Buffer
	protocol.WriteMsg(&withSrc, &protocol.VisitHello{SID: make([]byte, protocol.VisitSIDSize), Share: make([]byte, protocol.ShareSize)})
	protocol.WriteMsg(&withSrc, &protocol.VisitConfirm{Tag: make([]byte, protocol.TagSize), Src: make([]byte, 40)})
	f.Add(withSrc.Bytes())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		if _, err := Owner(rwConn{r: bytes.NewReader(in), w: io.Discard}, "k", ident); err == nil {
			t.Fatal("confirmed without the secret")
		}
	})
}

func FuzzVisitor(f *testing.F) {
	var seed bytes.Buffer
	protocol.WriteMsg(&seed, &protocol.VisitAccept{Share: make([]byte, protocol.ShareSize), Tag: make([]byte, protocol.TagSize)})
	f.Add(seed.Bytes())
	var refusal bytes.Buffer
	protocol.WriteMsg(&refusal, &protocol.Error{Code: protocol.CodeBadRequest, Message: "no"})
	f.Add(refusal.Bytes())
	f.Fuzz(func(t *testing.T, in []byte) {
		if _, err := Visitor(rwConn{r: bytes.NewReader(in), w: io.Discard}, nil, "k", ident); err == nil {
			t.Fatal("confirmed without the secret")
		}
	})
}
