package client

import (
	"context"
	"time"

	"github.com/hopproxy/hop/pkg/idletimeout"
	"github.com/hopproxy/hop/pkg/nodeset"
	"github.com/hopproxy/hop/pkg/xtcp"
)

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

// TuneAutoHeartbeat adjusts heartbeat.interval = "auto" of c before Run:
// the learner's configuration (tune may change it) and the grace a probe
// waits past its silence.
func TuneAutoHeartbeat(c *Client, tune func(*idletimeout.Config), grace time.Duration) {
	c.idleTuning, c.probeGraceBase = tune, grace
}

// AutoHeartbeatStatus is what "auto" knows now; ok is false for a fixed
// interval or before Run.
func AutoHeartbeatStatus(c *Client) (AutoHeartbeat, bool) {
	if c.auto == nil {
		return AutoHeartbeat{}, false
	}
	return c.auto.status(), true
}

// WatchNodes replaces how c learns its nodes (nodeset.Watch) before Run:
// watch gets the callback to call with nodes added and removed.
func WatchNodes(c *Client, watch func(ctx context.Context, onChange func(added, removed []nodeset.Node))) {
	c.nodeWatch = watch
}
