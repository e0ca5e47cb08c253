package nat

import (
	"fmt"
	"net/netip"
	"strings"
)

// noOther explains why nothing beyond the public address was tested.
func noOther(offered bool) string {
	if offered {
		return "the server's OTHER-ADDRESS is not an endpoint this socket can reach, so only one destination could be tried"
	}
	return "the server offers no alternate address or port (no OTHER-ADDRESS), so only one destination could be tried"
}

// classifyMapping compares the public endpoints seen by the probes
// (probes[0] towards server, then the alternate endpoints) as in RFC 5780
// §4.3, and says what could not be tested.
func classifyMapping(server, other netip.AddrPort, offered bool, probes []Probe) (Behavior, string) {
	if !other.IsValid() || len(probes) == 0 {
		return Unknown, noOther(offered)
	}
	m0 := probes[0].Mapped
	var (
		portKnown, portSame bool // port changed, address kept
		addrKnown, addrSame bool // address changed, port kept
		bothKnown, bothSame bool // both changed
		altKnown, altSame   bool // port changed on the alternate address
		mAddr               netip.AddrPort
		unanswered          []string
	)
	for _, p := range probes[1:] {
		if !p.Mapped.IsValid() {
			unanswered = append(unanswered, p.To.String())
			continue
		}
		ac, pc := p.To.Addr() != server.Addr(), p.To.Port() != server.Port()
		switch {
		case !ac && pc:
			portKnown, portSame = true, p.Mapped == m0
		case ac && !pc:
			addrKnown, addrSame, mAddr = true, p.Mapped == m0, p.Mapped
		case ac && pc:
			bothKnown, bothSame = true, p.Mapped == m0
			if mAddr.IsValid() {
				altKnown, altSame = true, p.Mapped == mAddr
			}
		}
	}
	altAddr := other.Addr() != server.Addr()
	switch {
	case portKnown && !portSame, altKnown && !altSame:
		return AddressAndPortDependent, ""
	case addrKnown && addrSame, bothKnown && bothSame:
		return EndpointIndependent, ""
	case portKnown && (addrKnown || bothKnown), altKnown:
		// The port alone changes nothing, the address does.
		return AddressDependent, ""
	case addrKnown, bothKnown:
		if other.Port() != server.Port() {
			// The test exists but its answer never came: no conclusion
			// from an answer that did not arrive.
			return Unknown, "the public port changes with the destination address, so the mapping is at least address-dependent; " +
				"whether it also changes with the port alone could not be told because " + strings.Join(unanswered, ", ") + " did not answer"
		}
		return AddressAndPortDependent, "the public port changes with the destination address; " +
			"whether it also changes with the port alone could not be tested (the server has no alternate port), " +
			"so the stricter behaviour is assumed"
	case portKnown:
		if altAddr {
			return Unknown, "the public port stays the same when only the destination port changes, but the server's alternate address (" +
				strings.Join(unanswered, ", ") + ") did not answer, so whether it changes with the address could not be told"
		}
		return EndpointIndependent, "only the destination port could be varied (the server has no alternate address); " +
			"a NAT that keeps the port per destination address would look the same, but such NATs are rare"
	}
	return Unknown, "the server's alternate endpoints (" + strings.Join(unanswered, ", ") + ") did not answer"
}

// classifyFiltering interprets the CHANGE-REQUEST tests as in RFC 5780 §4.4.
// A test that got no answer counts only if the control sent with it was
// answered (else its outcome is lost) and the endpoint that should have
// answered did answer a plain probe once the NAT had a reason to let it in.
func classifyFiltering(server, other netip.AddrPort, offered bool, ipTest, portTest result, probes []Probe) (Behavior, string) {
	if !other.IsValid() {
		return Unknown, noOther(offered)
	}
	answeredBy := func(dst netip.AddrPort) bool {
		for _, p := range probes {
			if p.To == dst && p.Mapped.IsValid() {
				return true
			}
		}
		return false
	}
	altPortUp := answeredBy(netip.AddrPortFrom(server.Addr(), other.Port()))
	otherUp := answeredBy(other)
	switch {
	case ipTest.outcome == answered:
		return EndpointIndependent, ""
	case portTest.outcome == answered:
		const partial = "answers from another port of the server got through, so it is at most address-dependent; "
		switch ipTest.outcome {
		case silent:
			if otherUp {
				return AddressDependent, ""
			}
			return AddressDependent, partial + "the server's alternate address " + other.String() +
				" never answered, so it could also be endpoint-independent"
		case lost:
			return AddressDependent, partial + "the request to answer from another address got no answer, nor did the control " +
				"request sent with it (lost on the way), so it could also be endpoint-independent"
		case refused:
			return AddressDependent, partial + fmt.Sprintf("the server refused to answer from another address (%d %s), ",
				ipTest.resp.code, ipTest.resp.reason) + "so it could also be endpoint-independent"
		case inconclusive:
			return AddressDependent, partial + "the server ignored the request to answer from another address, " +
				"so it could also be endpoint-independent"
		}
		return AddressDependent, partial + "the server has no alternate address, so it could also be endpoint-independent"
	case portTest.outcome == silent:
		if altPortUp {
			return AddressAndPortDependent, ""
		}
		return Unknown, "no answer came from another port of the server, but that port never answered at all, so this proves nothing"
	case portTest.outcome == lost:
		return Unknown, "no answer came from another port of the server, but none came to the control request sent with it either, " +
			"so the answers may have been lost on the way"
	case portTest.outcome == refused:
		return Unknown, fmt.Sprintf("the server refused to answer from another port (%d %s)", portTest.resp.code, portTest.resp.reason)
	case portTest.outcome == inconclusive:
		return Unknown, "the server ignored the request to answer from another port (it answered from the port it was sent to)"
	}
	// No alternate port: only the change of address was tried.
	switch ipTest.outcome {
	case silent:
		if otherUp {
			return AddressAndPortDependent, "no answer came from another address of the server; the server has no alternate port, " +
				"so address-dependent filtering could not be told apart and the stricter behaviour is assumed"
		}
		return Unknown, "no answer came from another address of the server, but that address never answered at all, so this proves nothing"
	case lost:
		return Unknown, "no answer came from another address of the server, but none came to the control request sent with it either, " +
			"so the answers may have been lost on the way"
	case refused:
		return Unknown, fmt.Sprintf("the server refused to answer from another address (%d %s)", ipTest.resp.code, ipTest.resp.reason)
	case inconclusive:
		return Unknown, "the server ignored the request to answer from another address"
	}
	return Unknown, "no filtering test could be run"
}

// deltas returns the differences between the public ports of successive
// answered probes.
func deltas(probes []Probe) []int {
	var out []int
	prev := -1
	for _, p := range probes {
		if !p.Mapped.IsValid() {
			continue
		}
		if prev >= 0 {
			out = append(out, int(p.Mapped.Port())-prev)
		}
		prev = int(p.Mapped.Port())
	}
	return out
}
