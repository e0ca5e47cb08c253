package nat

import "strconv"

// Behavior is a NAT mapping or filtering behaviour, as named by RFC 4787
// and tested for by RFC 5780.
type Behavior int

const (
	// Unknown: not tested, or the tests did not allow a conclusion; the
	// Report's note says why.
	Unknown Behavior = iota
	// EndpointIndependent mapping: one public address and port for every
	// destination. Filtering: anyone may send to that public address and
	// port once it exists.
	EndpointIndependent
	// AddressDependent mapping: a new public port for each destination
	// address. Filtering: only addresses sent to may answer, from any port.
	AddressDependent
	// AddressAndPortDependent mapping: a new public port for each
	// destination address and port (a "symmetric" NAT). Filtering: only the
	// exact addresses and ports sent to may answer.
	AddressAndPortDependent
)

// String returns the RFC 4787 name, for example "endpoint-independent".
func (b Behavior) String() string {
	switch b {
	case Unknown:
		return "unknown"
	case EndpointIndependent:
		return "endpoint-independent"
	case AddressDependent:
		return "address-dependent"
	case AddressAndPortDependent:
		return "address-and-port-dependent"
	}
	return "Behavior(" + strconv.Itoa(int(b)) + ")"
}

// abbrev is the short form used by Classify: EI, AD, APD, or ? for Unknown
// and anything else.
func (b Behavior) abbrev() string {
	switch b {
	case EndpointIndependent:
		return "EI"
	case AddressDependent:
		return "AD"
	case AddressAndPortDependent:
		return "APD"
	}
	return "?"
}

// Classify names a mapping and filtering pair compactly, for tallies and
// logs: "EIM/EIF", "EIM/APDF", "APDM/APDF", "?M/?F" and so on, with "?"
// for Unknown.
func Classify(mapping, filtering Behavior) string {
	return mapping.abbrev() + "M/" + filtering.abbrev() + "F"
}

// classes is every NAT class a hop client reports: "none" (not behind a
// NAT), "unknown", and the pairs Classify names ("EIM/APDF"...).
var classes = func() map[string]bool {
	m := map[string]bool{"none": true, "unknown": true}
	bs := []Behavior{Unknown, EndpointIndependent, AddressDependent, AddressAndPortDependent}
	for _, mp := range bs {
		for _, f := range bs {
			m[Classify(mp, f)] = true
		}
	}
	return m
}()

// Known is s if it is a NAT class a hop client reports, else "unknown":
// a class that came from a peer or a client can then label a metric or
// key a table without growing it with whatever was sent.
func Known(s string) string {
	if classes[s] {
		return s
	}
	return "unknown"
}
