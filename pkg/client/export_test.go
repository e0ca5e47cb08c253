package client

import "github.com/hopproxy/hop/pkg/xtcp"

// LoopbackOnlyCandidates makes P2P sockets offer no interface addresses,
// only what the server's STUN saw (127.0.0.1 in tests), so that the
// punches of a test stay on loopback. It returns the undo.
func LoopbackOnlyCandidates() (undo func()) {
	old := hostCandidates
	hostCandidates = func(uint16) ([]xtcp.Candidate, error) { return nil, nil }
	return func() { hostCandidates = old }
}
