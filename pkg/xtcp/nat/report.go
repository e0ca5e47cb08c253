package nat

import (
	"fmt"
	"net/netip"
	"strings"
)

// MaxPredictStep is the largest step between the public ports of successive
// destinations that PredictPorts extrapolates; larger or uneven steps are
// taken as random allocation.
const MaxPredictStep = 16

// Probe is one destination a plain Binding request was sent to, in order,
// and the public address the server saw (the zero AddrPort if no answer
// came).
type Probe struct {
	To     netip.AddrPort
	Mapped netip.AddrPort
}

// Report is what Discover learnt. Its fields are plain data; the methods
// interpret them.
type Report struct {
	// Server is the STUN server as given to Discover.
	Server netip.AddrPort
	// Other is the server's alternate endpoint as used for the tests
	// (OTHER-ADDRESS, see the package doc), the zero AddrPort if none.
	Other netip.AddrPort
	// LocalAddr is the socket's address, with the source address towards
	// Server in place of an unspecified one when it could be found.
	LocalAddr netip.AddrPort
	// Mapped is the public address and port the server saw.
	Mapped netip.AddrPort
	// PortPreserved says whether the public port is the local port.
	PortPreserved bool

	// Mapping says how the public address and port change with the
	// destination. MappingNote is empty when the result was fully tested,
	// and otherwise says why it is Unknown or what was not tested.
	Mapping     Behavior
	MappingNote string
	// Filtering says which senders the NAT lets in. FilteringNote is like
	// MappingNote.
	Filtering     Behavior
	FilteringNote string

	// Probes are the plain Binding requests: the server first, then the
	// server's address with the alternate port, the alternate address with
	// the server's port, and the alternate endpoint, those that exist.
	Probes []Probe
	// Deltas are the differences between the public ports seen by
	// successive answered probes (0 for every step of a NAT that keeps one
	// mapping).
	Deltas []int
}

// Behind reports whether a NAT changed the address or port: Mapped differs
// from LocalAddr. It is true when LocalAddr's IP could not be found.
func (r *Report) Behind() bool {
	return r.Mapped.IsValid() && r.Mapped != r.LocalAddr
}

// Class names the pair compactly, as Classify does: "EIM/APDF".
func (r *Report) Class() string { return Classify(r.Mapping, r.Filtering) }

// PredictPorts returns up to n public ports that the NEXT new destination
// will likely see from this socket, most likely first:
//
//   - endpoint-independent mapping: the one public port, every destination
//     sees it (a single element, whatever n);
//   - otherwise, when the non-zero Deltas all have one value d with
//     |d| <= MaxPredictStep (a NAT allocating ports in sequence): last+d,
//     last+2d, … where last is the public port of the last answered probe;
//   - otherwise nothing: the ports look random, or too few were seen.
//
// Traffic from other hosts behind the same NAT moves a sequential
// allocator on, so the later candidates matter too. With a single delta
// (a server with only an alternate port) the prediction is a guess.
func (r *Report) PredictPorts(n int) []uint16 {
	if n <= 0 || !r.Mapped.IsValid() {
		return nil
	}
	if r.Mapping == EndpointIndependent {
		return []uint16{r.Mapped.Port()}
	}
	step, ok := r.step()
	if !ok {
		return nil
	}
	var out []uint16
	for p := int(r.lastPort()) + step; len(out) < n && p >= 1 && p <= 65535; p += step {
		out = append(out, uint16(p))
	}
	return out
}

// step returns the one non-zero port delta, if the deltas have one.
func (r *Report) step() (int, bool) {
	step := 0
	for _, d := range r.Deltas {
		switch {
		case d == 0:
		case step == 0:
			step = d
		case d != step:
			return 0, false
		}
	}
	return step, step != 0 && step >= -MaxPredictStep && step <= MaxPredictStep
}

func (r *Report) lastPort() uint16 {
	for i := len(r.Probes) - 1; i >= 0; i-- {
		if r.Probes[i].Mapped.IsValid() {
			return r.Probes[i].Mapped.Port()
		}
	}
	return r.Mapped.Port()
}

// Explain says in plain words what the report means for P2P connections,
// one sentence per line.
func (r *Report) Explain() string {
	var b strings.Builder
	line := func(format string, args ...any) {
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	behind := r.Behind()
	who, lwho := "Your NAT", "your NAT"
	if behind {
		port := "it kept the local port"
		if !r.PortPreserved {
			port = fmt.Sprintf("it changed the local port %d to %d", r.LocalAddr.Port(), r.Mapped.Port())
		}
		line("You are behind a NAT: this socket (%v) appears on the internet as %v; %s.", r.LocalAddr, r.Mapped, port)
	} else {
		who, lwho = "Your firewall", "your firewall"
		line("No NAT: this socket's address %v is its public address, as %v sees it.", r.Mapped, r.Server)
	}

	// Without a NAT there is nothing to say about mapping unless a test
	// saw the public port change anyway.
	if behind || r.Mapping == AddressDependent || r.Mapping == AddressAndPortDependent {
		switch r.Mapping {
		case EndpointIndependent:
			line("%s keeps the same public address and port for every destination (endpoint-independent mapping): "+
				"direct P2P works with almost any peer.", who)
		case AddressDependent:
			line("%s keeps one public port per destination address but picks a new one for each new address (address-dependent mapping): "+
				"direct P2P works when the other side's NAT is endpoint-independent; otherwise hop relays through hops.", who)
		case AddressAndPortDependent:
			line("%s picks a new public port for each destination (address-and-port-dependent mapping, a 'symmetric' NAT): "+
				"direct P2P works only if the other side's NAT is endpoint-independent; otherwise hop relays through hops.", who)
		default:
			line("Whether %s keeps the same public port for every destination could not be tested: %s.", lwho, r.MappingNote)
		}
		if r.Mapping != Unknown && r.MappingNote != "" {
			line("Caveat on the mapping: %s.", r.MappingNote)
		}
	}

	switch r.Filtering {
	case EndpointIndependent:
		if behind {
			line("Once this socket has sent a packet out, %s lets in packets from anyone (endpoint-independent filtering): "+
				"a peer can reach you without you sending to it first.", lwho)
		} else {
			line("Nothing filters incoming packets (endpoint-independent filtering): a peer can reach you without you sending to it first.")
		}
	case AddressDependent:
		line("%s lets in packets only from addresses you have sent to, from any of their ports (address-dependent filtering): "+
			"you must send to the peer first, so hop has both sides send at the same time.", who)
	case AddressAndPortDependent:
		line("%s lets in packets only from the exact address and port you have sent to (address-and-port-dependent filtering): "+
			"each side must send to the other's public address and port before it can receive, so hop has both sides send at the same time.", who)
	default:
		line("Which senders %s lets in could not be tested: %s.", lwho, r.FilteringNote)
	}
	if r.Filtering != Unknown && r.FilteringNote != "" {
		line("Caveat on the filtering: %s.", r.FilteringNote)
	}

	if behind && r.Mapping != EndpointIndependent && r.Mapping != Unknown {
		if ports := r.PredictPorts(3); len(ports) > 0 {
			step, _ := r.step()
			guess := ""
			if len(r.Deltas) < 2 {
				guess = " (a guess from a single step)"
			}
			line("%s seems to hand out ports in steps of %d: the next destination will likely see port %d%s.", who, step, ports[0], guess)
		} else {
			line("The ports %s picks look random, so the port the next peer will see cannot be predicted.", lwho)
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}
