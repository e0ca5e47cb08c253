package xtcp

import (
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"sync/atomic"

	"golang.org/x/crypto/chacha20poly1305"
)

// Data frames: the layout is in the package doc (doc.go).
const (
	frameMagic     = "HOPD"
	frameVersion   = 1
	frameHeaderLen = 14
	frameTagLen    = chacha20poly1305.Overhead
	// FrameOverhead is what a data frame adds to its payload: a 14-byte
	// header and a 16-byte tag.
	FrameOverhead = frameHeaderLen + frameTagLen
)

// frameKind is the kind byte of a data frame.
type frameKind uint8

const (
	kindKCP      frameKind = 1 // a KCP packet (xtcp)
	kindDatagram frameKind = 2 // an application datagram (xudp)
)

// frameHeader is the decoded clear part of a data frame.
type frameHeader struct {
	Kind    frameKind
	Counter uint64
}

// parseFrame decodes the header of a data frame without authenticating it.
// It is strict: the magic, version 1, a known kind and room for the tag.
func parseFrame(b []byte) (frameHeader, error) {
	var h frameHeader
	if len(b) < FrameOverhead {
		return h, fmt.Errorf("%w: data frame of %d bytes, want at least %d", ErrMalformed, len(b), FrameOverhead)
	}
	if string(b[0:4]) != frameMagic {
		return h, fmt.Errorf("%w: bad magic %q", ErrMalformed, b[0:4])
	}
	if b[4] != frameVersion {
		return h, fmt.Errorf("%w: data frame version %d, want %d", ErrMalformed, b[4], frameVersion)
	}
	h.Kind = frameKind(b[5])
	if h.Kind != kindKCP && h.Kind != kindDatagram {
		return h, fmt.Errorf("%w: unknown data frame kind %d", ErrMalformed, b[5])
	}
	h.Counter = binary.BigEndian.Uint64(b[6:14])
	return h, nil
}

// frameSealer encrypts the frames one side sends. Safe for concurrent use.
type frameSealer struct {
	kind frameKind
	aead cipher.AEAD
	next atomic.Uint64 // counter of the next frame
}

func newFrameSealer(secret []byte, session SessionID, kind frameKind, sender Role) *frameSealer {
	return &frameSealer{kind: kind, aead: newFrameAEAD(secret, session, kind, sender)}
}

func newFrameAEAD(secret []byte, session SessionID, kind frameKind, sender Role) cipher.AEAD {
	info := infoKCP
	if kind == kindDatagram {
		info = infoDatagram
	}
	aead, err := chacha20poly1305.New(deriveKey(secret, session, info+sender.String(), chacha20poly1305.KeySize))
	if err != nil {
		panic(err) // the key has the right size
	}
	return aead
}

// seal appends the frame carrying payload to dst.
func (s *frameSealer) seal(dst, payload []byte) []byte {
	ctr := s.next.Add(1) - 1
	off := len(dst)
	dst = append(dst, frameMagic...)
	dst = append(dst, frameVersion, byte(s.kind))
	dst = binary.BigEndian.AppendUint64(dst, ctr)
	var nonce [chacha20poly1305.NonceSize]byte
	binary.BigEndian.PutUint64(nonce[4:], ctr)
	return s.aead.Seal(dst, nonce[:], payload, dst[off:off+frameHeaderLen])
}

// frameOpener decrypts the frames the other side sends and drops replays.
// Not safe for concurrent use: one reader owns it.
type frameOpener struct {
	kind  frameKind
	aead  cipher.AEAD
	win   replayWindow
	nonce [chacha20poly1305.NonceSize]byte // scratch; first 4 bytes stay 0
}

func newFrameOpener(secret []byte, session SessionID, kind frameKind, sender Role) *frameOpener {
	return &frameOpener{kind: kind, aead: newFrameAEAD(secret, session, kind, sender)}
}

// open authenticates and decrypts b in place and returns the payload, a
// slice of b. A frame of another kind, a forgery or a replay is an error.
func (o *frameOpener) open(b []byte) ([]byte, error) {
	h, err := parseFrame(b)
	if err != nil {
		return nil, err
	}
	if h.Kind != o.kind {
		return nil, fmt.Errorf("%w: data frame kind %d on a path of kind %d", ErrMalformed, h.Kind, o.kind)
	}
	if !o.win.fresh(h.Counter) {
		return nil, ErrReplay
	}
	binary.BigEndian.PutUint64(o.nonce[4:], h.Counter)
	pt, err := o.aead.Open(b[frameHeaderLen:frameHeaderLen], o.nonce[:], b[frameHeaderLen:], b[:frameHeaderLen])
	if err != nil {
		return nil, ErrBadMAC
	}
	if !o.win.accept(h.Counter) {
		return nil, ErrReplay
	}
	return pt, nil
}

// replayWindow accepts each counter once, as long as it is within
// replayWindowSize of the highest accepted one: the sliding bitmap of
// RFC 6479 (as WireGuard uses it).
type replayWindow struct {
	last uint64 // highest accepted counter
	any  bool   // whether any counter was accepted
	ring [replayBlocks]uint64
}

const (
	replayBlocks     = 32 // of 64 bits
	replayBlockMask  = replayBlocks - 1
	replayWindowSize = (replayBlocks - 1) * 64 // 1984 frames
)

// fresh reports whether accept could take ctr, without changing anything.
func (w *replayWindow) fresh(ctr uint64) bool {
	if !w.any || ctr > w.last {
		return true
	}
	if w.last-ctr > replayWindowSize {
		return false
	}
	return w.ring[(ctr>>6)&replayBlockMask]&(1<<(ctr&63)) == 0
}

// accept records ctr and reports whether it was new. Call it only for
// authentic frames: it moves the window.
func (w *replayWindow) accept(ctr uint64) bool {
	if !w.fresh(ctr) {
		return false
	}
	if !w.any {
		w.any = true
		w.last = ctr
		clear(w.ring[:])
	} else if ctr > w.last {
		cur, next := w.last>>6, ctr>>6
		diff := next - cur
		if diff > replayBlocks {
			diff = replayBlocks
		}
		for i := uint64(1); i <= diff; i++ {
			w.ring[(cur+i)&replayBlockMask] = 0
		}
		w.last = ctr
	}
	w.ring[(ctr>>6)&replayBlockMask] |= 1 << (ctr & 63)
	return true
}
