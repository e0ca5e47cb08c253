package xtcp

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors; match them with errors.Is. Errors returned by this
// package wrap them with detail.
var (
	// ErrMalformed: bytes that are not a well-formed control packet or
	// data frame (wrong length, magic, version, type or reserved bits).
	ErrMalformed = errors.New("xtcp: malformed packet")
	// ErrWrongSession: a well-formed control packet of another session
	// (another punch attempt).
	ErrWrongSession = errors.New("xtcp: packet of another session")
	// ErrBadMAC: a control packet or data frame that does not authenticate:
	// the sender does not have the secret key, or the bytes were altered.
	ErrBadMAC = errors.New("xtcp: packet does not authenticate (wrong secret key or altered)")
	// ErrReflected: an authentic control packet that carries our own role:
	// our own packet sent back to us, or a peer configured with our role.
	ErrReflected = errors.New("xtcp: packet carries our own role (reflected, or both peers have the same role)")
	// ErrStale: an authentic control packet whose timestamp is further
	// from our clock than the allowed skew (old, replayed, or a peer whose
	// clock is wrong).
	ErrStale = errors.New("xtcp: packet timestamp outside the allowed clock skew")
	// ErrReplay: an authentic packet already seen.
	ErrReplay = errors.New("xtcp: replayed packet")

	// ErrPunchTimeout: Punch found no path before its timeout. The
	// *PunchError that wraps it says why.
	ErrPunchTimeout = errors.New("xtcp: hole punch timed out")
	// ErrPathDead: a punched path stopped working: nothing authentic came
	// from the peer for KeepaliveTimeout, or keepalives pass but KCP data
	// does not. The caller may punch again or fall back to the relay.
	ErrPathDead = errors.New("xtcp: path dead")
	// ErrPeerClosed: the peer closed its end of the path.
	ErrPeerClosed = errors.New("xtcp: peer closed the path")
	// ErrClosed: the path or session was closed locally.
	ErrClosed = errors.New("xtcp: closed")
	// ErrQueueFull: a carrier's send queue had no room; the packet is
	// lost, as on a congested path.
	ErrQueueFull = errors.New("xtcp: carrier queue full")
	// ErrTooLarge: a datagram larger than MaxDatagramSize.
	ErrTooLarge = errors.New("xtcp: datagram too large")
	// ErrInvalidInterval: a keepalive interval set on a live path or link
	// that is not positive or not shorter than its keepalive timeout.
	ErrInvalidInterval = errors.New("xtcp: invalid keepalive interval")
)

// PunchFailure classifies why a punch failed.
type PunchFailure uint8

// Punch failures.
const (
	// NoPeerPackets: not a single packet from the peer arrived: its NAT or
	// firewall filters us, or it never started punching.
	NoPeerPackets PunchFailure = iota + 1
	// PeerPacketsRejected: packets that looked like probes arrived but
	// none passed the checks: a different secret key or session, a clock
	// off by more than the allowed skew, or both peers with one role.
	PeerPacketsRejected
	// NoRoundTrip: authentic packets from the peer arrived but no probe of
	// ours was answered from the address we sent it to (or, on the
	// visitor, the owner never announced its choice).
	NoRoundTrip
	// NotConfirmed: the owner found a path but the visitor never confirmed
	// the choice.
	NotConfirmed
	// Canceled: the context ended first.
	Canceled
	// SocketFailed: the socket failed.
	SocketFailed
)

// String describes the failure for a person.
func (f PunchFailure) String() string {
	switch f {
	case NoPeerPackets:
		return "no packet from the peer ever arrived: its NAT or firewall filters us, or it did not punch at the agreed time"
	case PeerPacketsRejected:
		return "packets from the peer arrived but were rejected"
	case NoRoundTrip:
		return "packets from the peer arrived but no round trip completed"
	case NotConfirmed:
		return "a round trip completed but the visitor never confirmed the chosen path"
	case Canceled:
		return "canceled"
	case SocketFailed:
		return "socket failed"
	}
	return fmt.Sprintf("failure(%d)", uint8(f))
}

// PunchError is the error Punch returns. It unwraps to ErrPunchTimeout on a
// timeout, to the context's error when canceled, or to the socket's error.
type PunchError struct {
	Reason      PunchFailure
	Role        Role
	Elapsed     time.Duration // from StartAt to the failure
	PacketsSent int           // every packet Punch sent
	// PeerPackets counts authentic packets from the peer.
	PeerPackets int
	// Rejected counts packets that looked like control packets but failed
	// a check; LastRejection is the last such check's error (ErrBadMAC,
	// ErrWrongSession, ErrStale, ErrReplay, ErrReflected, ErrMalformed).
	Rejected      int
	LastRejection error
	// Stray counts other packets (not control packets at all).
	Stray int
	Err   error
}

func (e *PunchError) Error() string {
	msg := fmt.Sprintf("xtcp: hole punch as %v failed after %v: %v (sent %d packets, %d authentic from the peer, %d rejected, %d stray)",
		e.Role, e.Elapsed.Round(time.Millisecond), e.Reason, e.PacketsSent, e.PeerPackets, e.Rejected, e.Stray)
	if e.Reason == PeerPacketsRejected && e.LastRejection != nil {
		msg += ": last rejection: " + e.LastRejection.Error()
	}
	if e.Err != nil && !errors.Is(e.Err, ErrPunchTimeout) {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *PunchError) Unwrap() error { return e.Err }
