package sni

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// hello returns the first flight of a crypto/tls client for serverName.
func hello(t testing.TB, serverName string) []byte {
	t.Helper()
	a, b := net.Pipe()
	done := make(chan []byte)
	go func() {
		buf := make([]byte, 64<<10)
		b.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _ := b.Read(buf)
		b.Close()
		done <- buf[:n]
	}()
	c := tls.Client(a, &tls.Config{ServerName: serverName, InsecureSkipVerify: serverName == ""})
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Handshake() // fails when b closes
	a.Close()
	return <-done
}

// split rewrites the single handshake record of h as records of n bytes.
func split(h []byte, n int) []byte {
	body := h[5:]
	var out []byte
	for len(body) > 0 {
		k := min(n, len(body))
		out = append(out, 0x16, h[1], h[2], byte(k>>8), byte(k))
		out = append(out, body[:k]...)
		body = body[k:]
	}
	return out
}

func TestParse(t *testing.T) {
	h := hello(t, "app.example.com")
	for name, b := range map[string][]byte{"one record": h, "records of 7 bytes": split(h, 7), "with trailing bytes": append(bytes.Clone(h), 1, 2, 3)} {
		if got, err := Parse(b); err != nil || got != "app.example.com" {
			t.Errorf("%s: Parse = %q, %v", name, got, err)
		}
	}
	if _, err := Parse(hello(t, "")); !errors.Is(err, ErrNoServerName) {
		t.Errorf("hello without SNI: %v", err)
	}
	for i := range h[:len(h)-1] {
		if _, err := Parse(h[:i]); !errors.Is(err, errShort) {
			t.Fatalf("prefix of %d bytes: %v, want short", i, err)
		}
	}
	for name, c := range map[string]struct {
		b    []byte
		want error
	}{
		"http":          {[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), ErrNotTLS},
		"ssl2":          {[]byte{0x16, 2, 0, 0, 1, 1}, ErrNotTLS},
		"zero record":   {[]byte{0x16, 3, 1, 0, 0}, ErrMalformed},
		"server hello":  {[]byte{0x16, 3, 1, 0, 4, 2, 0, 0, 0}, ErrMalformed},
		"huge hello":    {[]byte{0x16, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff}, ErrTooLarge},
		"empty hello":   {[]byte{0x16, 3, 1, 0, 4, 1, 0, 0, 0}, ErrMalformed},
		"cut extension": {append([]byte{0x16, 3, 1, 0, 44, 1, 0, 0, 40}, append(make([]byte, 34), 0, 0, 0, 0, 0, 2)...), ErrMalformed},
	} {
		if _, err := Parse(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

// trickle is a conn that returns one byte per Read.
type trickle struct {
	net.Conn
}

func (t trickle) Read(b []byte) (int, error) { return t.Conn.Read(b[:min(len(b), 1)]) }

func TestRead(t *testing.T) {
	h := hello(t, "b.example.com")
	a, b := net.Pipe()
	defer a.Close()
	go func() { b.Write(h); b.Write([]byte("rest")) }()
	name, prefix, err := Read(trickle{a}, time.Now().Add(5*time.Second))
	if err != nil || name != "b.example.com" || !bytes.Equal(prefix, h) {
		t.Fatalf("Read = %q, %d bytes (%v), want %d bytes", name, len(prefix), err, len(h))
	}

	// A peer that stops sending runs into the deadline.
	a2, b2 := net.Pipe()
	defer a2.Close()
	go b2.Write(h[:10])
	_, _, err = Read(a2, time.Now().Add(50*time.Millisecond))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("stalled peer: %v", err)
	}
	b2.Close()

	// A peer that sends endless small records stops at MaxWireBytes.
	a3, b3 := net.Pipe()
	defer a3.Close()
	go func() {
		b3.Write([]byte{0x16, 3, 1, 0, 4, 1, 0, 0x3f, 0}) // a hello of almost 16 KB
		for {
			if _, err := b3.Write([]byte{0x16, 3, 1, 0, 1, 0}); err != nil {
				return
			}
		}
	}()
	_, prefix, err = Read(a3, time.Now().Add(10*time.Second))
	if !errors.Is(err, ErrTooLarge) || len(prefix) > MaxWireBytes {
		t.Fatalf("endless records: %v after %d bytes", err, len(prefix))
	}
	a3.Close()
	b3.Close()

	// EOF in the middle.
	a4, b4 := net.Pipe()
	go func() { b4.Write(h[:20]); b4.Close() }()
	if _, _, err := Read(a4, time.Now().Add(5*time.Second)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("EOF: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	h := hello(f, "app.example.com")
	f.Add(h)
	f.Add(split(h, 7))
	f.Add(hello(f, ""))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{0x16, 3, 1, 0, 4, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		name, err := Parse(b)
		if err == nil && (name == "" || len(name) > 253) {
			t.Fatalf("Parse = %q without error", name)
		}
	})
}
