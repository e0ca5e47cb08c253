package yamux

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"
)

// A recvBuffer gives back the bytes in order across chunk boundaries, for
// writes and reads of every size, and holds no chunk once emptied.
func TestRecvBuffer(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	src := make([]byte, 1<<20)
	rng.Read(src)
	var b recvBuffer
	var got []byte
	in := 0
	for len(got) < len(src) {
		if in < len(src) && (b.Len() == 0 || rng.Intn(2) == 0) {
			n := []int{1, 12, recvChunk - 1, recvChunk, recvChunk + 1, 3 * recvChunk, 64 << 10}[rng.Intn(7)]
			if n > len(src)-in {
				n = len(src) - in
			}
			k, err := b.readFrom(bytes.NewReader(src[in:in+n]), n)
			if err != nil || k != n {
				t.Fatalf("readFrom(%d) = %d, %v", n, k, err)
			}
			in += n
		}
		p := make([]byte, []int{0, 1, 100, recvChunk, 2*recvChunk + 5, 64 << 10}[rng.Intn(6)])
		k := b.Read(p)
		got = append(got, p[:k]...)
		if b.Len() != in-len(got) {
			t.Fatalf("Len %d, want %d", b.Len(), in-len(got))
		}
		if b.Len() == 0 && len(b.chunks) != 0 {
			t.Fatalf("empty buffer holds %d chunks", len(b.chunks))
		}
		if want := (b.Len() + recvChunk - 1) / recvChunk; len(b.chunks) > want+1 {
			t.Fatalf("%d bytes in %d chunks", b.Len(), len(b.chunks))
		}
	}
	if !bytes.Equal(got, src) {
		t.Fatal("bytes differ")
	}
}

// A short frame body keeps what arrived and reports the error.
func TestRecvBufferShortRead(t *testing.T) {
	var b recvBuffer
	k, err := b.readFrom(bytes.NewReader(make([]byte, recvChunk+10)), recvChunk+20)
	if !errors.Is(err, io.ErrUnexpectedEOF) || k != recvChunk+10 || b.Len() != k {
		t.Fatalf("readFrom = %d, %v; Len %d", k, err, b.Len())
	}
	b.release()
	if b.Len() != 0 || b.chunks != nil {
		t.Fatal("release left bytes")
	}
}
