package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Version is the protocol version this build speaks. It is the first byte
// of every frame. Version 2 has the PAKE login (CPace, identity keys,
// users); a v1 peer's first frame is answered with a version error.
const Version = 2

// HeaderSize is the size of a frame header: version (1), type (1),
// payload length (4, big endian).
const HeaderSize = 6

// MaxPayload is the largest payload a frame may carry. A peer that announces
// a longer one is malformed and is disconnected.
const MaxPayload = 64 << 10

// MaxPreAuthPayload is the largest payload read before the peer has
// authenticated (ReadFrameMax in the login exchange): a login message is a
// few hundred bytes, and an unauthenticated peer must not make the server
// buffer 64 KiB per half-open handshake.
const MaxPreAuthPayload = 1 << 10

// Sentinel errors of the codec; match them with errors.Is.
var (
	// ErrFrameTooLarge: the header announces a payload over MaxPayload.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrVersion: the frame's version byte is not Version.
	ErrVersion = errors.New("incompatible protocol version")
	// ErrUnknownType: the frame's type is not a known message type.
	ErrUnknownType = errors.New("unknown message type")
	// ErrMalformed: the payload does not decode into its message type.
	ErrMalformed = errors.New("malformed message")
	// ErrUnexpected: a well-formed message arrived where another was required.
	ErrUnexpected = errors.New("unexpected message")
)

// VersionError reports the version a peer spoke.
type VersionError struct{ Got uint8 }

func (e *VersionError) Error() string {
	return fmt.Sprintf("incompatible protocol version: peer speaks v%d, this build speaks v%d; run the same hop release on both sides", e.Got, Version)
}

// Unwrap makes errors.Is(err, ErrVersion) true.
func (e *VersionError) Unwrap() error { return ErrVersion }

// AppendFrame appends a frame of type t carrying payload to dst.
func AppendFrame(dst []byte, t Type, payload []byte) ([]byte, error) {
	if len(payload) > MaxPayload {
		return dst, fmt.Errorf("%w: %d bytes, at most %d", ErrFrameTooLarge, len(payload), MaxPayload)
	}
	dst = append(dst, Version, byte(t), 0, 0, 0, 0)
	binary.BigEndian.PutUint32(dst[len(dst)-4:], uint32(len(payload)))
	return append(dst, payload...), nil
}

// WriteFrame writes one frame with a single Write call, so concurrent
// writers serialized by the caller never interleave partial frames.
func WriteFrame(w io.Writer, t Type, payload []byte) error {
	buf, err := AppendFrame(make([]byte, 0, HeaderSize+len(payload)), t, payload)
	if err != nil {
		return err
	}
	_, err = w.Write(buf)
	return err
}

// ReadFrame reads one frame of at most MaxPayload bytes. It checks the
// version and the length before reading the payload, so an oversize frame
// costs no allocation.
func ReadFrame(r io.Reader) (Type, []byte, error) { return ReadFrameMax(r, MaxPayload) }

// ReadFrameMax reads one frame whose payload may be at most limit bytes
// (limit is clamped to MaxPayload). A header announcing more fails with
// ErrFrameTooLarge before any payload is read or allocated, so the cost of a
// frame to the reader is bounded by limit. Use it with MaxPreAuthPayload for
// everything read before the peer has authenticated.
func ReadFrameMax(r io.Reader, limit int) (Type, []byte, error) {
	limit = min(max(limit, 0), MaxPayload)
	var hdr [HeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	if hdr[0] != Version {
		return 0, nil, &VersionError{Got: hdr[0]}
	}
	n := binary.BigEndian.Uint32(hdr[2:])
	if n > uint32(limit) {
		return 0, nil, fmt.Errorf("%w: peer announced %d bytes, at most %d here", ErrFrameTooLarge, n, limit)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return Type(hdr[1]), payload, nil
}
