// Package drain keeps the set of open connections of a service, so that a
// two-phase shutdown can stop accepting, wait for them up to a grace
// period, and then close whatever is left.
package drain

import (
	"net"
	"sync"
	"time"
)

// Set is a set of open connections; the zero Set is ready to use.
type Set struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	idle  chan struct{} // closed and replaced when the set becomes empty
	shut  bool          // see Close
}

// Add puts c in the set. It reports false, leaving c out, once Close was
// called: the caller closes c.
func (t *Set) Add(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.shut {
		return false
	}
	if t.conns == nil {
		t.conns = map[net.Conn]struct{}{}
	}
	t.conns[c] = struct{}{}
	return true
}

// Remove takes c out of the set.
func (t *Set) Remove(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	if len(t.conns) == 0 && t.idle != nil {
		close(t.idle)
		t.idle = nil
	}
	t.mu.Unlock()
}

// Count is the number of open connections.
func (t *Set) Count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// WaitIdle waits until no connection is open or d passes.
func (t *Set) WaitIdle(d time.Duration) bool {
	t.mu.Lock()
	if len(t.conns) == 0 {
		t.mu.Unlock()
		return true
	}
	if t.idle == nil {
		t.idle = make(chan struct{})
	}
	ch := t.idle
	t.mu.Unlock()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ch:
		return true
	case <-timer.C:
		return false
	}
}

// CloseAll closes every connection still in the set.
func (t *Set) CloseAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for c := range t.conns {
		c.Close()
	}
}

// Close closes every connection in the set, like CloseAll, and makes every
// later Add refuse: no connection outlives it. It may be called more than
// once.
func (t *Set) Close() {
	t.mu.Lock()
	t.shut = true
	t.mu.Unlock()
	t.CloseAll()
}
