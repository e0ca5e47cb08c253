package seal

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// pair returns two sealed ends of a TCP connection over loopback (TCP has
// CloseWrite, like the conns hop seals) and the raw far end for tampering.
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-ch
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func sealed(t testing.TB, a, b net.Conn) (*Conn, *Conn) {
	t.Helper()
	isk := make([]byte, 64)
	rand.Read(isk)
	s1, r1 := Keys(isk, "test", true)
	s2, r2 := Keys(isk, "test", false)
	x, err := New(a, s1, r1)
	if err != nil {
		t.Fatal(err)
	}
	y, err := New(b, s2, r2)
	if err != nil {
		t.Fatal(err)
	}
	return x, y
}

func TestStreamRoundTripAndHalfClose(t *testing.T) {
	a, b := tcpPair(t)
	x, y := sealed(t, a, b)
	msg := bytes.Repeat([]byte("hello sealed world "), 5000) // several records
	go func() {
		x.Write(msg)
		x.CloseWrite()
	}()
	got, err := io.ReadAll(y)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("got %d bytes, want %d", len(got), len(msg))
	}
	// The other direction still works after the half-close.
	if _, err := y.Write([]byte("answer")); err != nil {
		t.Fatal(err)
	}
	y.CloseWrite()
	back, err := io.ReadAll(x)
	if err != nil || string(back) != "answer" {
		t.Fatalf("answer after half-close: %q, %v", back, err)
	}
	if _, err := x.Write([]byte("late")); !errors.Is(err, ErrClosedWrite) {
		t.Fatalf("write after CloseWrite: %v", err)
	}
}

// relay copies a→b, optionally tampering, and records what it carried.
func relay(t *testing.T, tamper func([]byte) []byte) (visitor, owner *Conn, seen *bytes.Buffer, done chan struct{}) {
	a1, a2 := tcpPair(t)
	b1, b2 := tcpPair(t)
	seen = &bytes.Buffer{}
	done = make(chan struct{})
	go func() {
		defer close(done)
		all, _ := io.ReadAll(a2)
		seen.Write(all)
		if tamper != nil {
			all = tamper(all)
		}
		b1.Write(all)
		b1.Close()
	}()
	visitor, owner = sealed(t, a1, b2)
	return visitor, owner, seen, done
}

func TestRelaySeesOnlyCiphertext(t *testing.T) {
	v, o, seen, done := relay(t, nil)
	secret := []byte("the quick brown fox, plaintext the relay must not see")
	v.Write(secret)
	v.CloseWrite()
	got, err := io.ReadAll(o)
	<-done
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("owner got %q, %v", got, err)
	}
	if bytes.Contains(seen.Bytes(), []byte("quick brown")) || bytes.Contains(seen.Bytes(), []byte("plaintext")) {
		t.Fatal("the relay saw plaintext")
	}
}

func TestFlippedByteIsDetected(t *testing.T) {
	v, o, _, done := relay(t, func(b []byte) []byte { b[5] ^= 1; return b })
	v.Write([]byte("some data"))
	v.CloseWrite()
	_, err := io.ReadAll(o)
	<-done
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("flipped byte: %v, want ErrAuth", err)
	}
	if _, err := o.Read(make([]byte, 10)); !errors.Is(err, ErrAuth) {
		t.Fatalf("error not sticky: %v", err)
	}
}

func TestTruncationIsDetected(t *testing.T) {
	for _, tt := range []struct {
		name string
		cut  func([]byte) []byte
	}{
		{"end record dropped", func(b []byte) []byte { return b[:len(b)-Overhead] }},
		{"mid record", func(b []byte) []byte { return b[:len(b)-Overhead-3] }},
		{"record dropped", func(b []byte) []byte { return b[len(b)-Overhead-len("second")-Overhead:] }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, o, _, done := relay(t, tt.cut)
			v.Write([]byte("first"))
			v.Write([]byte("second"))
			v.CloseWrite()
			_, err := io.ReadAll(o)
			<-done
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrAuth) {
				t.Fatalf("got %v, want ErrTruncated or ErrAuth", err)
			}
			if tt.name != "record dropped" && !errors.Is(err, ErrTruncated) {
				t.Fatalf("got %v, want ErrTruncated", err)
			}
		})
	}
}

func TestReflectedRecordsDoNotOpen(t *testing.T) {
	// A relay that sends a side's own records back: each direction has
	// its own key.
	a1, a2 := tcpPair(t)
	x, _ := sealed(t, a1, a2)
	go func() { io.Copy(a2, a2) }()
	x.Write([]byte("echo me"))
	if _, err := x.Read(make([]byte, 64)); !errors.Is(err, ErrAuth) {
		t.Fatalf("reflected record: %v, want ErrAuth", err)
	}
}

func TestDatagrams(t *testing.T) {
	a, b := tcpPair(t)
	x, y := sealed(t, a, b)
	in := [][]byte{[]byte("one"), {}, bytes.Repeat([]byte{7}, MaxDatagram)}
	go func() {
		for _, d := range in {
			if err := x.WriteDatagram(d); err != nil {
				t.Error(err)
			}
		}
	}()
	buf := make([]byte, MaxDatagram)
	for i, d := range in {
		y.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := y.ReadDatagram(buf)
		if err != nil || !bytes.Equal(buf[:n], d) {
			t.Fatalf("datagram %d: %d bytes, %v", i, n, err)
		}
	}
	if err := x.WriteDatagram(make([]byte, MaxDatagram+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize datagram: %v", err)
	}
}

func TestBadKey(t *testing.T) {
	a, _ := net.Pipe()
	if _, err := New(a, make([]byte, 5), make([]byte, KeySize)); err == nil {
		t.Fatal("short key accepted")
	}
}

// FuzzRead feeds arbitrary bytes as the peer's records: Read must return
// an error or data, never panic or hang.
func FuzzRead(f *testing.F) {
	var rec bytes.Buffer
	key := make([]byte, KeySize)
	w, _ := New(nopConn{Writer: &rec}, key, key)
	w.Write([]byte("seed"))
	w.WriteDatagram([]byte("dgram"))
	w.CloseWrite()
	f.Add(rec.Bytes())
	f.Add([]byte{0, 1, 0})
	f.Add([]byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, _ := New(nopConn{Reader: bytes.NewReader(b)}, key, key)
		buf := make([]byte, 100)
		for range 100 {
			if _, err := r.Read(buf); err != nil {
				break
			}
		}
		r2, _ := New(nopConn{Reader: bytes.NewReader(b)}, key, key)
		for range 100 {
			if _, err := r2.ReadDatagram(buf); err != nil {
				break
			}
		}
	})
}

type nopConn struct {
	net.Conn
	io.Reader
	io.Writer
}

func (c nopConn) Read(b []byte) (int, error) {
	if c.Reader == nil {
		return 0, io.EOF
	}
	return c.Reader.Read(b)
}
func (c nopConn) Write(b []byte) (int, error) { return c.Writer.Write(b) }
func (c nopConn) Close() error                { return nil }

func TestBox(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, KeySize), bytes.Repeat([]byte{2}, KeySize)
	box, err := SealBox(k1, []byte("ad"), []byte("candidates"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(box, []byte("candidates")) {
		t.Fatal("box in clear")
	}
	if m, err := OpenBox(k1, []byte("ad"), box); err != nil || string(m) != "candidates" {
		t.Fatalf("open: %q, %v", m, err)
	}
	for name, try := range map[string]func() error{
		"wrong key": func() error { _, err := OpenBox(k2, []byte("ad"), box); return err },
		"wrong ad":  func() error { _, err := OpenBox(k1, []byte("da"), box); return err },
		"flipped": func() error {
			b := bytes.Clone(box)
			b[0] ^= 1
			_, err := OpenBox(k1, []byte("ad"), b)
			return err
		},
	} {
		if err := try(); !errors.Is(err, ErrAuth) {
			t.Errorf("%s: %v, want ErrAuth", name, err)
		}
	}
	if _, err := OpenBox(k1, nil, []byte("short")); !errors.Is(err, ErrRecord) {
		t.Errorf("short box: %v", err)
	}
}

func FuzzOpenBox(f *testing.F) {
	key := bytes.Repeat([]byte{1}, KeySize)
	box, _ := SealBox(key, nil, []byte("seed"))
	f.Add(box)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := OpenBox(key, nil, b)
		if err == nil && !bytes.Equal(b, box) {
			t.Fatalf("a box that SealBox did not make opened: %x", b)
		}
		if err == nil && string(m) != "seed" {
			t.Fatalf("the seed box opened to %q", m)
		}
	})
}

// BenchmarkStream: sealed bytes over loopback TCP, 64 KiB writes (what
// pkg/bridge writes).
func BenchmarkStream(b *testing.B) {
	a, c := tcpPair(b)
	x, y := sealed(b, a, c)
	buf := make([]byte, 64<<10)
	done := make(chan struct{})
	go func() {
		io.Copy(io.Discard, y)
		close(done)
	}()
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for range b.N {
		if _, err := x.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	x.CloseWrite()
	<-done
}
