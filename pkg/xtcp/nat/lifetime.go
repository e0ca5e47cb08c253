package nat

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/pion/stun/v3"
)

// Mapping lifetime (RFC 5780 §4.6, with hop's own STUN server): how long
// the NAT in front of this host keeps an idle UDP mapping.

// AttrRespondAfter is hop's RESPOND-AFTER STUN attribute (comprehension-
// optional, docs/PROTOCOL.md): a 4-byte big-endian count of milliseconds
// after which hops sends its one answer to the request. It is the value
// of stunserver.AttrRespondAfter.
const AttrRespondAfter stun.AttrType = 0xC0D0

// MaxLifetimeSilence is the longest silence hops accepts in RESPOND-AFTER
// (stunserver.MaxRespondAfter).
const MaxLifetimeSilence = 10 * time.Minute

// Errors of LifetimeProber.Probe: each means the probe could not be run
// and says nothing about the NAT.
var (
	// ErrNoDelaySupport: the server answered at once, so it does not know
	// RESPOND-AFTER (a STUN server other than hops, or an old hops).
	ErrNoDelaySupport = errors.New("nat: STUN server does not support delayed answers (RESPOND-AFTER)")
)

// DefaultLifetimeGrace is LifetimeProber.Grace's default.
const DefaultLifetimeGrace = 2 * time.Second

// LifetimeProber measures whether the NAT keeps an idle UDP mapping for a
// given silence without touching any live flow: each probe opens a fresh
// UDP socket, sends one Binding request with RESPOND-AFTER (the silence)
// to the server, stays silent, and waits for the answer until silence +
// Grace. The answer comes back through the mapping only if the NAT kept
// it that long. Its Probe method is an idletimeout.Prober.
//
// The request is sent once: a request lost on its way out looks like a
// mapping that expired, which the learner's confirmation (a failure
// counts only when repeated) absorbs.
type LifetimeProber struct {
	// Server returns the STUN server's UDP address (hops' bindPort); it is
	// asked at every probe, so a changed DNS answer is followed.
	Server func(ctx context.Context) (netip.AddrPort, error)
	// Listen opens the fresh socket of a probe; nil means an IPv4 socket
	// on an ephemeral port of every address.
	Listen func() (*net.UDPConn, error)
	// Grace is how long after the silence the answer may still come (the
	// round trip and the server's timer). Default DefaultLifetimeGrace.
	Grace time.Duration
}

// Probe runs one probe: survived reports whether the answer sent after
// silence came back. err != nil means the probe could not be run (socket,
// server address, a refusal such as hops' 486 for too many delayed
// answers, ErrNoDelaySupport, ctx ended).
func (p *LifetimeProber) Probe(ctx context.Context, silence time.Duration) (survived bool, err error) {
	if silence < time.Millisecond || silence > MaxLifetimeSilence {
		return false, fmt.Errorf("%w: lifetime probe silence %v is outside 1ms..%v", ErrInvalidOptions, silence, MaxLifetimeSilence)
	}
	grace := p.Grace
	if grace <= 0 {
		grace = DefaultLifetimeGrace
	}
	server, err := p.Server(ctx)
	if err != nil {
		return false, fmt.Errorf("nat: lifetime probe: STUN server address: %w", err)
	}
	listen := p.Listen
	if listen == nil {
		listen = func() (*net.UDPConn, error) { return net.ListenUDP("udp4", &net.UDPAddr{}) }
	}
	conn, err := listen()
	if err != nil {
		return false, fmt.Errorf("nat: lifetime probe socket: %w", err)
	}
	defer conn.Close()

	txid, raw := newDelayedRequest(silence)
	sent := time.Now()
	conn.SetReadDeadline(sent.Add(silence + grace))
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.WriteToUDPAddrPort(raw, server); err != nil {
		return false, fmt.Errorf("nat: lifetime probe to %v: %w", server, err)
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return false, nil // the mapping was gone: the answer did not get in
			}
			if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
				continue // an ICMP error some systems report
			}
			return false, fmt.Errorf("nat: lifetime probe read: %w", err)
		}
		if unmapAP(from) != unmapAP(server) {
			continue
		}
		r, err := parseResponse(buf[:n], txid)
		if err != nil {
			continue
		}
		if !r.success {
			return false, fmt.Errorf("%w: %d %s (lifetime probe of %v)", ErrRefused, r.code, r.reason, silence)
		}
		if time.Since(sent) < silence {
			return false, ErrNoDelaySupport
		}
		return true, nil
	}
}

// newDelayedRequest returns a padded Binding request asking for its answer
// after d.
func newDelayedRequest(d time.Duration) (txid [stun.TransactionIDSize]byte, raw []byte) {
	v := binary.BigEndian.AppendUint32(nil, uint32(d/time.Millisecond))
	m := stun.MustBuild(stun.BindingRequest, stun.TransactionID, rawAttr{AttrRespondAfter, v}, PadTo(RequestSize))
	return m.TransactionID, m.Raw
}

func unmapAP(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }
