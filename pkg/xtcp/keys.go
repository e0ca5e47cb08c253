package xtcp

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Role says which end of a P2P path this is. The server assigns it: the
// visitor is the hopc that wants to reach a service, the owner the hopc
// that exposes it. The roles break every tie: the owner picks the punched
// path, the visitor is the yamux client, and each direction of a data path
// has its own key.
type Role uint8

// Roles. The values are on the wire (the role byte of a control packet).
const (
	RoleVisitor Role = 1
	RoleOwner   Role = 2
)

// String returns "visitor" or "owner".
func (r Role) String() string {
	switch r {
	case RoleVisitor:
		return "visitor"
	case RoleOwner:
		return "owner"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

func (r Role) valid() bool { return r == RoleVisitor || r == RoleOwner }

// peer returns the other role.
func (r Role) peer() Role {
	if r == RoleVisitor {
		return RoleOwner
	}
	return RoleVisitor
}

// MarshalText encodes the role as "visitor" or "owner".
func (r Role) MarshalText() ([]byte, error) {
	if !r.valid() {
		return nil, fmt.Errorf("xtcp: invalid role %d", uint8(r))
	}
	return []byte(r.String()), nil
}

// UnmarshalText accepts exactly "visitor" or "owner".
func (r *Role) UnmarshalText(b []byte) error {
	switch string(b) {
	case "visitor":
		*r = RoleVisitor
	case "owner":
		*r = RoleOwner
	default:
		return fmt.Errorf("xtcp: unknown role %q (want visitor or owner)", b)
	}
	return nil
}

// SessionID identifies one punch attempt. The server makes a fresh one for
// every attempt and hands it to both peers; it is the HKDF salt of every key
// of the attempt and of the path that follows, so packets of one attempt
// are worthless in another. It is not secret.
type SessionID [16]byte

// NewSessionID returns a random session ID.
func NewSessionID() SessionID {
	var id SessionID
	rand.Read(id[:]) // never fails since Go 1.24
	return id
}

// ParseSessionID parses the 32 hex digits that String returns.
func ParseSessionID(s string) (SessionID, error) {
	var id SessionID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("xtcp: session ID %q: want %d hex digits", s, 2*len(id))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("xtcp: session ID %q: %v", s, err)
	}
	return id, nil
}

// String returns the ID as 32 lowercase hex digits.
func (id SessionID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the zero ID, which no attempt may use.
func (id SessionID) IsZero() bool { return id == SessionID{} }

// MarshalText encodes the ID as 32 hex digits (a JSON string).
func (id SessionID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses 32 hex digits.
func (id *SessionID) UnmarshalText(b []byte) error {
	v, err := ParseSessionID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// KeySize is the size of an attempt key (PunchConfig.Key).
const KeySize = 32

// HKDF info labels. Each key of an attempt is
// HKDF-SHA256(attempt key, salt = sessionID, info = label); the data labels
// end in the sending role ("visitor" or "owner"), so each direction has its
// own key and a packet reflected back to its sender does not open. The
// attempt key is fresh per attempt (both peers contribute randomness to
// it), so a repeated session ID never repeats a key, and the counter
// nonces of the data frames never repeat under one key.
const (
	infoPunch    = "hop punch v1"    // control packets (HMAC key)
	infoKCP      = "hop kcp v1 "     // + sender role: KCP data frames
	infoDatagram = "hop xudp v1 "    // + sender role: xudp data frames
	infoKCPConv  = "hop kcp conv v1" // KCP conversation ID (4 bytes)
	keyLen       = 32                // bytes of every key
)

// deriveKey returns n bytes of HKDF-SHA256(key, salt = id, info).
func deriveKey(key []byte, id SessionID, info string, n int) []byte {
	k, err := hkdf.Key(sha256.New, key, id[:], info, n)
	if err != nil {
		// Only an n beyond 255*32 fails; every caller asks for less.
		panic(err)
	}
	return k
}

// checkKey rejects anything but an attempt key of KeySize bytes (a
// low-entropy secret passed directly would make the frames' keys
// guessable offline from a captured packet).
func checkKey(key []byte) error {
	if len(key) != KeySize {
		return fmt.Errorf("xtcp: attempt key of %d bytes, want %d (derive it from the offer's PAKE exchange)", len(key), KeySize)
	}
	return nil
}
