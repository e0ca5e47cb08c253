package client

import "github.com/hopproxy/hop/pkg/xtcp"

// LoopbackOnlyCandidates makes P2P sockets offer no interface addresses,
// only what the server's STUN saw (127.0.0.1 in tests), and makes clients
// started after it ask no gateway for a port mapping, so that the
// traffic of a test stays on loopback. It returns the undo.
func LoopbackOnlyCandidates() (undo func()) {
	oldHosts, oldMapper := hostCandidates, startMapper
	hostCandidates = func(uint16) ([]xtcp.Candidate, error) { return nil, nil }
	startMapper = noMapper
	return func() { hostCandidates, startMapper = oldHosts, oldMapper }
}
