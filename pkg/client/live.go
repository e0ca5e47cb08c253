package client

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hopproxy/hop/pkg/control"
	"github.com/hopproxy/hop/pkg/heartbeat"
	"github.com/hopproxy/hop/pkg/mux"
	"github.com/hopproxy/hop/pkg/protocol"
)

// live is a logged-in session to one node; visitors and P2P attempts use
// any node's. It changes with every reconnect.
type live struct {
	ms *mux.Session
	ch *control.Channel
	hb *heartbeat.Monitor
	// For heartbeat.interval = "auto": the session's ID and probe key
	// (Welcome; no key from a hops that serves no idle probes) and its
	// TLS connection, whose TCP keepalive follows the heartbeat.
	sessionID, probeKey string
	conn                net.Conn
	addr                string // the node's address, where idle probes go
	node                *node
}

// peekLive returns a logged-in session without waiting (the first node's
// that has one), nil when no node has one.
func (c *Client) peekLive() *live {
	c.liveMu.Lock()
	defer c.liveMu.Unlock()
	return c.firstLive()
}

// firstLive is peekLive with liveMu held.
func (c *Client) firstLive() *live {
	for _, n := range c.nodes {
		if n.live != nil {
			return n.live
		}
	}
	return nil
}

// lives returns the logged-in session of every node that has one.
func (c *Client) lives() []*live {
	c.liveMu.Lock()
	defer c.liveMu.Unlock()
	var out []*live
	for _, n := range c.nodes {
		if n.live != nil {
			out = append(out, n.live)
		}
	}
	return out
}

// p2pWaits routes P2P answers and start signals from the control stream to
// the attempts waiting for them.
type p2pWaits struct {
	mu      sync.Mutex
	answers map[string]chan *protocol.P2PAnswer // by offer ID
	gos     map[string]chan *protocol.P2PGo     // by session ID
	auths   map[string]chan *protocol.P2PAuth   // "v/" + offer ID (visitor), "o/" + session ID (owner)
}

// setLive records node n's logged-in session (nil: none now), and wakes
// those waiting for a session when the first one comes.
func (c *Client) setLive(n *node, l *live) {
	c.liveMu.Lock()
	defer c.liveMu.Unlock()
	was := c.firstLive() != nil
	n.live = l
	now := c.firstLive() != nil
	if c.liveCh == nil {
		c.liveCh = make(chan struct{})
	}
	switch {
	case now && !was:
		close(c.liveCh)
	case !now && was:
		c.liveCh = make(chan struct{})
	}
}

// liveWait bounds how long a visitor's connection waits for a session to
// the server (at boot, or during a reconnect) before it is given up.
const liveWait = 5 * time.Second

// current returns the logged-in session, waiting up to liveWait for one,
// or an error saying there is none.
func (c *Client) current() (*live, error) {
	t := time.NewTimer(liveWait)
	defer t.Stop()
	for {
		c.liveMu.Lock()
		l := c.firstLive()
		if c.liveCh == nil {
			c.liveCh = make(chan struct{})
		}
		ch := c.liveCh
		c.liveMu.Unlock()
		if l != nil {
			return l, nil
		}
		select {
		case <-ch:
		case <-t.C:
			return nil, fmt.Errorf("not connected to the server %s", c.serverAddr())
		}
	}
}

func (w *p2pWaits) expectAnswer(id string) (chan *protocol.P2PAnswer, func()) {
	ch := make(chan *protocol.P2PAnswer, 1)
	w.mu.Lock()
	w.answers[id] = ch
	w.mu.Unlock()
	return ch, func() { w.mu.Lock(); delete(w.answers, id); w.mu.Unlock() }
}

func (w *p2pWaits) expectGo(session string) (chan *protocol.P2PGo, func()) {
	ch := make(chan *protocol.P2PGo, 1)
	w.mu.Lock()
	w.gos[session] = ch
	w.mu.Unlock()
	return ch, func() { w.mu.Lock(); delete(w.gos, session); w.mu.Unlock() }
}

// expectAuth waits for the peer's P2PAuth: a visitor's by its offer ID
// (the server names it toward the visitor), an owner's by session ID.
func (w *p2pWaits) expectAuth(key string) (chan *protocol.P2PAuth, func()) {
	ch := make(chan *protocol.P2PAuth, 1)
	w.mu.Lock()
	if w.auths == nil {
		w.auths = map[string]chan *protocol.P2PAuth{}
	}
	w.auths[key] = ch
	w.mu.Unlock()
	return ch, func() { w.mu.Lock(); delete(w.auths, key); w.mu.Unlock() }
}

func (w *p2pWaits) deliver(m protocol.Message) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch m := m.(type) {
	case *protocol.P2PAuth:
		key := "o/" + m.SessionID
		if m.ID != "" {
			key = "v/" + m.ID
		}
		if ch := w.auths[key]; ch != nil {
			select {
			case ch <- m:
			default:
			}
		}
	case *protocol.P2PAnswer:
		if ch := w.answers[m.ID]; ch != nil {
			select {
			case ch <- m:
			default:
			}
		}
	case *protocol.P2PGo:
		if ch := w.gos[m.SessionID]; ch != nil {
			select {
			case ch <- m:
			default:
			}
		}
	}
}

// closers is a set of things to close when the client stops (direct P2P
// paths, visitor listeners).
type closers struct {
	mu  sync.Mutex
	set map[io.Closer]struct{}
}

func (c *closers) add(x io.Closer) {
	c.mu.Lock()
	if c.set == nil {
		c.set = map[io.Closer]struct{}{}
	}
	c.set[x] = struct{}{}
	c.mu.Unlock()
}

func (c *closers) remove(x io.Closer) {
	c.mu.Lock()
	delete(c.set, x)
	c.mu.Unlock()
}

func (c *closers) closeAll() {
	c.mu.Lock()
	xs := make([]io.Closer, 0, len(c.set))
	for x := range c.set {
		xs = append(xs, x)
	}
	c.mu.Unlock()
	for _, x := range xs {
		x.Close()
	}
}

// sendResult reports an attempt's outcome to the server, best effort.
func (c *Client) sendResult(r *protocol.P2PResult) {
	if len(r.Error) > protocol.MaxResultError { // the whole story is in our log
		cut := protocol.MaxResultError - len(" …")
		for cut > 0 && !utf8.RuneStart(r.Error[cut]) {
			cut--
		}
		r.Error = r.Error[:cut] + " …"
	}
	l, err := c.current()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	l.ch.Send(ctx, r)
}
