package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hopproxy/hop/pkg/backoff"
	"github.com/hopproxy/hop/pkg/nodeset"
	"github.com/hopproxy/hop/pkg/protocol"
)

// A client attaches to every hops node it is given (serverAddrs, or every
// address its serverAddr resolves to): one session per node, each with
// its own heartbeat, reconnect backoff, registrar and status, so that any
// node can serve any of the client's proxies and losing one node loses
// only the connections that were on it. The client is up while any
// session is up.

// node is one hops the client attaches to.
type node struct {
	addr     string // IP:port dialed; the node label of hopc's metrics
	endpoint string // the serverAddrs entry it came from (its host is the TLS server name)
	name     string // for logs and status: the endpoint, and the address when they differ

	cancel context.CancelFunc // ends the node's loop (a node DNS no longer lists)

	live *live // the logged-in session, nil between sessions; under Client.liveMu

	mu    sync.Mutex
	stats Stats // Sessions, Reconnects and LastCause; online is live != nil
	perm  error // the permanent error that stopped the loop, if any
}

// NodeStatus is one node in Status.
type NodeStatus struct {
	Name      string `json:"name"` // as configured (serverAddrs, or serverAddr:serverPort)
	Addr      string `json:"addr"` // dialed
	Online    bool   `json:"online"`
	Sessions  int    `json:"sessions"`
	LastError string `json:"lastError"`
	// Stopped is set when the node refused the client for good (a wrong
	// token, say): its loop ended, the others go on.
	Stopped bool `json:"stopped"`
}

func (n *node) status(online bool) NodeStatus {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := NodeStatus{Name: n.endpoint, Addr: n.addr, Online: online, Sessions: n.stats.Sessions, Stopped: n.perm != nil}
	if n.stats.LastCause != nil {
		s.LastError = n.stats.LastCause.Error()
	}
	return s
}

// nodeEndpoint is one node to attach to: Addr dialed, Name as configured.
type nodeEndpoint = nodeset.Node

// watchNodes calls onChange with the nodes added and removed, at once and
// whenever they change, until ctx ends: every address of serverAddrs (or
// of serverAddr:serverPort), names re-resolved every minute so that added
// nodes are found (package nodeset). Tests may replace it (nodeWatch).
func (c *Client) watchNodes(ctx context.Context, onChange func(added, removed []nodeEndpoint)) {
	if c.nodeWatch != nil {
		c.nodeWatch(ctx, onChange)
		return
	}
	nodeset.Watch(ctx, nodeset.Config{Endpoints: c.cfg.ServerEndpoints(), Log: c.log}, onChange)
}

// runNodes attaches to every node until ctx ends. It returns nil then, or
// a permanent error (wrapping ErrPermanent) once every node has refused
// the client for good.
func (c *Client) runNodes(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	nodes := map[string]*node{}
	allStopped := make(chan error, 1)
	var wg sync.WaitGroup
	stopped := func() {
		mu.Lock()
		defer mu.Unlock()
		var errs []error
		for _, n := range nodes {
			n.mu.Lock()
			err := n.perm
			n.mu.Unlock()
			if err == nil {
				return
			}
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			select {
			case allStopped <- errs[0]:
			default:
			}
		}
	}
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		c.watchNodes(ctx, func(added, removed []nodeEndpoint) {
			mu.Lock()
			defer mu.Unlock()
			for _, e := range removed {
				if n := nodes[e.Addr]; n != nil {
					c.log.Info("node no longer listed: detaching", "node", n.name, "addr", n.addr)
					n.cancel()
					delete(nodes, e.Addr)
				}
			}
			for _, e := range added {
				if nodes[e.Addr] != nil {
					continue
				}
				nctx, ncancel := context.WithCancel(ctx)
				name := e.Name
				if e.Addr != e.Name {
					name = e.Name + " (" + e.Addr + ")"
				}
				n := &node{addr: e.Addr, endpoint: e.Name, name: name, cancel: ncancel}
				nodes[e.Addr] = n
				c.addNode(n)
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := c.runNode(nctx, n)
					if err == nil {
						if ctx.Err() == nil { // detached: DNS no longer lists it
							c.removeNode(n)
						}
						return // or the client stops: its status and series stay
					}
					// Refused for good: it stays in the status, stopped.
					n.mu.Lock()
					n.perm = err
					n.mu.Unlock()
					go stopped()
				}()
			}
		})
	}()
	var err error
	select {
	case <-ctx.Done():
	case err = <-allStopped:
		cancel()
	}
	<-watchDone
	wg.Wait()
	return err
}

// addNode and removeNode keep c.nodes, in the order the nodes came.
// Each node has its series in hopc's metrics while it is attached to.
func (c *Client) addNode(n *node) {
	c.liveMu.Lock()
	c.nodes = append(c.nodes, n)
	c.liveMu.Unlock()
	if c.metrics.m != nil {
		c.metrics.m.AddNode(n.addr)
	}
}

func (c *Client) removeNode(n *node) {
	c.liveMu.Lock()
	for i, x := range c.nodes {
		if x == n {
			c.nodes = append(c.nodes[:i:i], c.nodes[i+1:]...)
			break
		}
	}
	c.liveMu.Unlock()
	if c.metrics.m != nil {
		c.metrics.m.RemoveNode(n.addr)
	}
}

// runNode keeps a session to node n until ctx ends (nil) or n refuses the
// client for good (the error, wrapping ErrPermanent).
func (c *Client) runNode(ctx context.Context, n *node) error {
	bo := backoff.Backoff{Min: c.cfg.Reconnect.MinDelay.Duration, Max: c.cfg.Reconnect.MaxDelay.Duration}
	for attempt := 0; ctx.Err() == nil; attempt++ {
		if attempt > 0 {
			n.mu.Lock()
			n.stats.Reconnects++
			n.mu.Unlock()
			c.mu.Lock()
			c.stats.Reconnects++
			c.mu.Unlock()
		}
		up, err := c.session(ctx, n)
		if ctx.Err() != nil {
			return nil
		}
		n.mu.Lock()
		n.stats.LastCause = err
		n.mu.Unlock()
		c.mu.Lock()
		c.stats.LastCause = err
		c.stats.LoggedIn = c.anyLive()
		c.mu.Unlock()
		if c.auto != nil && up > 0 {
			c.auto.sessionEnded(err)
		}
		if up == 0 && err != nil {
			c.metrics.m.LoginFailures.WithLabelValues(n.addr, loginFailure(err)).Inc()
		}
		if perm := permanent(err); perm != nil {
			c.log.Error("giving up on this server: this cannot be fixed by reconnecting", "server", n.name, "error", err)
			return perm
		}
		if up >= c.cfg.Reconnect.StableAfter.Duration {
			bo.Reset()
		}
		d := bo.Next()
		var pe *protocol.Error
		switch {
		case up > 0:
			c.log.Warn("connection lost", "server", n.name, "cause", err, "uptime", up.Round(time.Second))
			c.log.Info("reconnecting", "server", n.name, "in", d.Round(time.Millisecond))
		case errors.As(err, &pe) && pe.Code == protocol.CodeClientIDInUse:
			c.log.Warn(fmt.Sprintf("login refused: client ID in use by another hopc's live session; retrying in %v", d.Round(100*time.Millisecond)),
				"server", n.name, "error", pe.Message, "attempt", bo.Attempt())
		default:
			c.log.Warn("cannot connect to server", "server", n.name, "error", err, "retry_in", d.Round(time.Millisecond), "attempt", bo.Attempt())
		}
		if !backoff.Sleep(ctx, d) {
			return nil
		}
	}
	return nil
}

// anyLive reports whether a session to some node is up.
func (c *Client) anyLive() bool {
	c.liveMu.Lock()
	defer c.liveMu.Unlock()
	for _, n := range c.nodes {
		if n.live != nil {
			return true
		}
	}
	return false
}

// Nodes is the status of every node, in the order they came.
func (c *Client) Nodes() []NodeStatus {
	c.liveMu.Lock()
	nodes := append([]*node(nil), c.nodes...)
	online := make([]bool, len(nodes))
	for i, n := range nodes {
		online[i] = n.live != nil
	}
	c.liveMu.Unlock()
	out := make([]NodeStatus, 0, len(nodes))
	for i, n := range nodes {
		out = append(out, n.status(online[i]))
	}
	return out
}
