package client

import (
	"context"
	"net/netip"
	"time"

	"github.com/hopproxy/hop/pkg/protocol"
	"github.com/hopproxy/hop/pkg/tcppunch"
	"github.com/hopproxy/hop/pkg/xtcp"
)

// TCP hole punching (pkg/tcppunch) runs beside the UDP punch of every
// attempt, from a TCP port whose public mapping hops reports over STUN on
// its TCP bindPort. Where UDP is blocked but the NATs keep TCP mappings
// stable, it gives the link a direct TCP carrier; where both work, the
// link has both and prefers UDP, falling back to TCP before the relay.

// tcpDiscoverTimeout bounds the STUN exchange over TCP of an attempt.
const tcpDiscoverTimeout = 2 * time.Second

// prepareTCP opens an attempt's TCP endpoint and gathers its candidates
// (interface addresses with its port, and the mapping hops saw). Without
// an endpoint (a server that does not answer STUN over TCP, say) the
// attempt is UDP only: it returns nil.
func (c *Client) prepareTCP(ctx context.Context) (*tcppunch.Endpoint, []protocol.Candidate) {
	server, err := c.stunServer(ctx)
	if err != nil {
		return nil, nil
	}
	ep, err := tcppunch.Listen(nil, netip.AddrPort{})
	if err != nil {
		c.log.Debug("no TCP punching endpoint", "error", err)
		return nil, nil
	}
	mapped, err := ep.Discover(ctx, server, tcpDiscoverTimeout)
	if err != nil {
		c.log.Debug("no public TCP mapping from the server; this attempt punches UDP only", "error", err)
		ep.Close()
		return nil, nil
	}
	hosts, _ := hostCandidates(ep.Port())
	cands := toWire(hosts)
	if len(cands) > protocol.MaxCandidates-1 {
		cands = cands[:protocol.MaxCandidates-1]
	}
	cands = append(cands, protocol.Candidate{Addr: mapped.String(), Kind: xtcp.ServerReflexive.String()})
	return ep, cands
}

// tcpResult is the outcome of an attempt's TCP punch.
type tcpResult struct {
	carrier *tcppunch.Carrier
	err     error
}

// startTCPPunch punches over TCP from ep to the peer's TCP candidates at
// startAt, in the background; it returns nil when either side has none.
// The endpoint is closed when the punch is over (a carrier outlives it).
// base bounds it from outside (the client's life), not the attempt: the
// UDP punch may end first and the attempt with it.
func startTCPPunch(base context.Context, ep *tcppunch.Endpoint, key []byte, sid xtcp.SessionID, role xtcp.Role,
	peer []protocol.Candidate, startAt time.Time, carrier tcppunch.CarrierConfig, log interface{ Debug(string, ...any) }) <-chan tcpResult {
	remote := fromWire(peer)
	if ep == nil || len(remote) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(base, time.Until(startAt)+punchTimeout+time.Second)
	if len(remote) > tcppunch.MaxCandidates {
		remote = remote[:tcppunch.MaxCandidates]
	}
	ch := make(chan tcpResult, 1)
	go func() {
		defer cancel()
		defer ep.Close()
		cr, err := tcppunch.Punch(ctx, ep, tcppunch.Config{Key: key, SessionID: sid, Role: role, Remote: remote,
			StartAt: startAt, Timeout: punchTimeout, Carrier: carrier})
		if err != nil {
			log.Debug("TCP punch failed", "error", err)
		}
		ch <- tcpResult{cr, err}
	}()
	return ch
}

// awaitTCP waits for the TCP punch (nil: there is none).
func awaitTCP(ch <-chan tcpResult) tcpResult {
	if ch == nil {
		return tcpResult{}
	}
	return <-ch
}

// tcpOutcome fills in r for a path that only TCP found.
func tcpOutcome(r *protocol.P2PResult, cr *tcppunch.Carrier) {
	r.Outcome, r.Transport, r.Path = "direct", "tcp", cr.Path().Kind.String()
	if xtcp.ClassifyPath(cr.RemoteAddr()) == xtcp.PathLAN {
		r.Outcome = "lan"
	}
}
