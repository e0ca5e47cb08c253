package yamux

import (
	"io"
	"sync"
)

// hop: recvChunk is the unit of a stream's receive buffer.
const recvChunk = 16 << 10

var recvPool = sync.Pool{New: func() any { return new([recvChunk]byte) }}

// recvBuffer (hop) is a stream's receive buffer: the bytes received and
// not yet read, in pooled chunks of recvChunk bytes. Upstream uses a
// bytes.Buffer, which grows by doubling to twice the window (4 MiB for a
// 2 MiB window) and leaves the smaller arrays it outgrew as garbage; a
// recvBuffer holds at most the buffered bytes rounded up to a chunk, hands
// each chunk back to the pool once it has been read, and holds nothing
// when empty.
type recvBuffer struct {
	chunks []*[recvChunk]byte
	r      int // read offset in chunks[0]
	w      int // write offset in the last chunk
	n      int // bytes buffered
}

// Len is the number of bytes buffered.
func (b *recvBuffer) Len() int { return b.n }

// readFrom reads exactly n bytes from r into the buffer. On an error the
// bytes read so far stay buffered and are counted in the result.
func (b *recvBuffer) readFrom(r io.Reader, n int) (int, error) {
	got := 0
	for got < n {
		if len(b.chunks) == 0 || b.w == recvChunk {
			b.chunks = append(b.chunks, recvPool.Get().(*[recvChunk]byte))
			b.w = 0
		}
		last := b.chunks[len(b.chunks)-1]
		end := b.w + n - got
		if end > recvChunk {
			end = recvChunk
		}
		k, err := io.ReadFull(r, last[b.w:end])
		b.w += k
		b.n += k
		got += k
		if err != nil {
			return got, err
		}
	}
	return got, nil
}

// Read moves buffered bytes into p and returns every chunk it empties to
// the pool.
func (b *recvBuffer) Read(p []byte) int {
	done := 0
	for done < len(p) && b.n > 0 {
		c := b.chunks[0]
		end := recvChunk
		if len(b.chunks) == 1 {
			end = b.w
		}
		k := copy(p[done:], c[b.r:end])
		done += k
		b.r += k
		b.n -= k
		if b.r == end {
			b.dropFirst()
		}
	}
	return done
}

func (b *recvBuffer) dropFirst() {
	recvPool.Put(b.chunks[0])
	b.chunks[0] = nil
	b.chunks = b.chunks[1:]
	b.r = 0
	if len(b.chunks) == 0 {
		b.chunks = nil
		b.w = 0
	}
}

// release drops what is buffered and returns the chunks to the pool.
func (b *recvBuffer) release() {
	for _, c := range b.chunks {
		recvPool.Put(c)
	}
	*b = recvBuffer{}
}
