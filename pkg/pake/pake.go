// Package pake is CPace (draft-irtf-cfrg-cpace), a balanced
// password-authenticated key exchange, over the ristretto255 group with
// SHA-512: CPACE-RISTR255-SHA512.
//
// Two parties that share a low-entropy secret (a login token, a proxy's
// secretKey) each send one 32-byte share and derive the same intermediate
// session key (ISK). Whoever sees or relays the exchange — a server in the
// middle, a man in the middle, an impostor — learns nothing that lets it
// test guesses of the secret offline: an active attacker gets one guess per
// exchange it takes part in, which it can only check by completing the
// exchange with an honest party. That is why hop uses it instead of a MAC
// keyed by the secret, whose transcript can be brute-forced.
//
// The generator is derived from the secret, the channel identifier (CI:
// who talks to whom and in what context, e.g. a TLS channel binding and
// both identities) and the session ID (sid: fresh randomness of both
// parties where the caller has it), so an ISK is bound to all three.
// Callers confirm the key with [Confirm]/[Verify] before trusting the peer,
// and derive working keys with [Key].
//
// hop writes its own CPace because no maintained Go package of it is
// served here (filippo.io/cpace is not); the group arithmetic comes from
// github.com/gtank/ristretto255.
package pake

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"

	"github.com/gtank/ristretto255"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrBadShare: the peer's share is not the canonical encoding of a
	// group element, or yields the identity (an attempt to force a key
	// that does not depend on the secret).
	ErrBadShare = errors.New("pake: invalid share from the peer")
)

// Sizes on the wire.
const (
	ShareSize = 32 // an encoded ristretto255 element
	TagSize   = 32 // a key confirmation tag (HMAC-SHA256)
	ISKSize   = 64 // SHA-512 output
)

// Role orders the transcript: exactly one party of an exchange is the
// Initiator.
type Role uint8

// The two roles.
const (
	Initiator Role = 1
	Responder Role = 2
)

const (
	dsi      = "CPaceRistretto255"
	dsiISK   = dsi + "_ISK"
	sInBytes = 128 // SHA-512 block size, for the zero padding of the generator string
)

// State is one party's side of one exchange. It is used once.
type State struct {
	role  Role
	y     *ristretto255.Scalar
	share []byte
	ad    []byte
	sid   []byte
}

// Start begins an exchange: it derives the generator from the secret, the
// channel identifier and the session ID, picks a random scalar and returns
// the state whose Share is sent to the peer. ad is this party's associated
// data, bound into the ISK (the peer passes it to Finish).
func Start(role Role, secret, channel, sid, ad []byte) *State {
	g := generator(secret, channel, sid)
	var r [64]byte
	rand.Read(r[:])                                        // never fails (crypto/rand contract since Go 1.24)
	y, _ := ristretto255.NewScalar().SetUniformBytes(r[:]) // 64 bytes: cannot fail
	Y := ristretto255.NewIdentityElement().ScalarMult(y, g)
	return &State{role: role, y: y, share: Y.Bytes(), ad: append([]byte(nil), ad...), sid: append([]byte(nil), sid...)}
}

// Share is the 32 bytes to send to the peer.
func (s *State) Share() []byte { return s.share }

// Finish takes the peer's share and associated data and returns the ISK,
// which both parties obtain only if they used the same secret, channel and
// session ID. The ISK must still be confirmed (Confirm, Verify) before the
// peer is trusted.
func (s *State) Finish(peerShare, peerAD []byte) ([]byte, error) {
	if len(peerShare) != ShareSize {
		return nil, ErrBadShare
	}
	Y, err := ristretto255.NewIdentityElement().SetCanonicalBytes(peerShare)
	if err != nil {
		return nil, ErrBadShare
	}
	K := ristretto255.NewIdentityElement().ScalarMult(s.y, Y)
	if K.Equal(ristretto255.NewIdentityElement()) == 1 {
		return nil, ErrBadShare
	}
	h := sha512.New()
	h.Write(AppendLV(nil, []byte(dsiISK)))
	h.Write(AppendLV(nil, s.sid))
	h.Write(AppendLV(nil, K.Bytes()))
	if s.role == Initiator {
		h.Write(AppendLV(AppendLV(nil, s.share), s.ad))
		h.Write(AppendLV(AppendLV(nil, peerShare), peerAD))
	} else {
		h.Write(AppendLV(AppendLV(nil, peerShare), peerAD))
		h.Write(AppendLV(AppendLV(nil, s.share), s.ad))
	}
	return h.Sum(nil), nil
}

// generator maps the generator string of the draft (DSI, secret, zero
// padding to a block, CI, sid, each length-prefixed) to a group element.
func generator(secret, channel, sid []byte) *ristretto255.Element {
	pad := sInBytes - 1 - lenPrefixed(len(secret)) - lenPrefixed(len(dsi))
	if pad < 0 {
		pad = 0
	}
	var b []byte
	b = AppendLV(b, []byte(dsi))
	b = AppendLV(b, secret)
	b = AppendLV(b, make([]byte, pad))
	b = AppendLV(b, channel)
	b = AppendLV(b, sid)
	sum := sha512.Sum512(b)
	return ristretto255.NewIdentityElement().FromUniformBytes(sum[:])
}

// AppendLV appends b prefixed with its length as LEB128 (the draft's
// prepend_len). Callers build channel identifiers from such fields, so
// that no two different lists of fields give the same bytes.
func AppendLV(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func lenPrefixed(n int) int { return len(binary.AppendUvarint(nil, uint64(n))) + n }

// Confirm is the key confirmation tag that the party of role sends: an
// HMAC over a label under a key derived from the ISK. Each role's tag
// differs, so a tag reflected back to its sender does not verify.
func Confirm(isk []byte, role Role) []byte {
	mac := hmac.New(sha256.New, Key(isk, "hop pake confirm", 32))
	mac.Write([]byte{byte(role)})
	return mac.Sum(nil)
}

// Verify checks, in constant time, the tag the party of role sent.
func Verify(isk []byte, role Role, tag []byte) bool {
	return hmac.Equal(tag, Confirm(isk, role))
}

// Key derives n bytes of working key material from the ISK for the
// purpose named by info: HKDF-SHA256(ISK, no salt, info).
func Key(isk []byte, info string, n int) []byte {
	k, err := hkdf.Key(sha256.New, isk, nil, info, n)
	if err != nil {
		// Only n beyond 255*32 fails; callers ask for keys of 32 or 64 bytes.
		panic("pake: " + err.Error())
	}
	return k
}
