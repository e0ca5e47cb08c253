package xtcp

import (
	"encoding/binary"
	"sync"
)

// KCP retransmits what its RTO or fast resend thinks lost. Over a reliable
// carrier (the relay, a punched TCP connection) nothing is lost while the
// carrier lives: a retransmission is only ever a copy of what the stream
// is already delivering, sent because the stream's queues made the round
// trip swing past the RTO. Measured over the relay in TestLinkUpgradeDowngrade
// and the e2e downgrade cell, such copies doubled the bytes the server
// carried. So a link running KCP drops, on a reliable carrier, the PUSH
// segments that carrier has already taken; the receive side of a reliable
// carrier never drops (it waits instead), so every segment it took
// arrives. A new carrier starts with an empty record: what the old one
// lost goes out again.
//
// This reads kcp-go's wire format (no FEC, no kcp-go encryption: hop's
// carriers seal the packets): segments of a 24-byte little-endian header —
// conv(4) cmd(1) frg(1) wnd(2) ts(4) sn(4) una(4) len(4) — and len bytes
// of data, several per packet.

const (
	kcpHeader  = 24
	kcpCmdPush = 81
	// sentWindow is how many segment numbers back a carrier remembers; KCP
	// never has more than its send window (1024 by default, see
	// KCPConfig.SendWindow) in flight.
	sentWindow = 8192
)

// sentSet records the segment numbers a reliable carrier has taken, within
// sentWindow of the highest.
type sentSet struct {
	mu   sync.Mutex
	top  uint32 // highest sn recorded + 1 (modular)
	init bool
	bits [sentWindow / 64]uint64
}

func (s *sentSet) has(sn uint32) bool {
	if !s.init {
		return false
	}
	if d := s.top - sn; d == 0 || d > sentWindow { // not below top, or forgotten
		return false
	}
	return s.bits[sn%sentWindow/64]&(1<<(sn%64)) != 0
}

func (s *sentSet) add(sn uint32) {
	if !s.init {
		s.init, s.top = true, sn
	}
	if d := s.top - sn; d >= 1 && d <= 1<<31 && d > sentWindow {
		return // long forgotten: its bit now stands for a newer number
	}
	if d := sn - s.top; d < 1<<31 { // at or above top: clear the numbers skipped up to sn
		if d >= sentWindow {
			s.bits = [sentWindow / 64]uint64{}
		} else {
			for x := s.top; x != sn+1; x++ {
				s.bits[x%sentWindow/64] &^= 1 << (x % 64)
			}
		}
		s.top = sn + 1
	}
	s.bits[sn%sentWindow/64] |= 1 << (sn % 64)
}

// filter returns pkt without the PUSH segments already taken (pkt itself
// when there are none, an empty slice when nothing is left, into buf
// otherwise), and the segment numbers of the PUSH segments it keeps. A
// packet it cannot parse is passed whole.
func (s *sentSet) filter(pkt, buf []byte, sns []uint32) ([]byte, []uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dup := false
	for off := 0; off+kcpHeader <= len(pkt); {
		n := int(binary.LittleEndian.Uint32(pkt[off+20:]))
		end := off + kcpHeader + n
		if n < 0 || end > len(pkt) {
			return pkt, sns[:0]
		}
		if pkt[off+4] == kcpCmdPush && s.has(binary.LittleEndian.Uint32(pkt[off+12:])) {
			dup = true
		}
		off = end
	}
	sns = sns[:0]
	out := pkt
	if dup {
		out = buf[:0]
	}
	for off := 0; off+kcpHeader <= len(pkt); {
		end := off + kcpHeader + int(binary.LittleEndian.Uint32(pkt[off+20:]))
		seg := pkt[off:end]
		off = end
		if seg[4] == kcpCmdPush {
			sn := binary.LittleEndian.Uint32(seg[12:])
			if s.has(sn) {
				continue
			}
			sns = append(sns, sn)
		}
		if dup {
			out = append(out, seg...)
		}
	}
	return out, sns
}

// taken records the segments of a packet the carrier took.
func (s *sentSet) taken(sns []uint32) {
	s.mu.Lock()
	for _, sn := range sns {
		s.add(sn)
	}
	s.mu.Unlock()
}
