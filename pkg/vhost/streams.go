package vhost

import (
	"context"
	"log/slog"
	"net"
	"sync"

	"github.com/hopproxy/hop/pkg/acceptloop"
	"github.com/hopproxy/hop/pkg/drain"
)

// streamServer is what the https and tcpmux servers share: an accept loop
// that runs handle for each connection, the connections whose first bytes
// are being read (pending, closed when accepting stops, so that none waits
// out its timeout), and the forwarded ones (conns; the caller's set when
// it drains them itself, see HTTPSConfig.Conns).
type streamServer struct {
	log     *slog.Logger
	conns   *drain.Set
	ownSet  bool // conns is the server's own: Close closes them
	pending drain.Set

	mu     sync.Mutex
	ln     net.Listener
	closed bool
	wg     sync.WaitGroup
}

// init sets the log and the set of forwarded connections (nil: one of
// its own).
func (s *streamServer) init(log *slog.Logger, conns *drain.Set) {
	s.log, s.conns = log, conns
	if conns == nil {
		s.conns, s.ownSet = new(drain.Set), true
	}
}

// serve starts accepting on ln in the background, handle running for each
// connection; after stopAccepting it closes ln at once.
func (s *streamServer) serve(ln net.Listener, handle func(net.Conn)) {
	s.mu.Lock()
	s.ln = ln
	closed := s.closed
	s.mu.Unlock()
	if closed {
		ln.Close()
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		acceptloop.Serve(context.Background(), ln, func(c net.Conn) {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				handle(c)
			}()
		}, acceptloop.Options{Log: s.log})
	}()
}

// stopAccepting closes the listener and the pending connections (and
// refuses later ones); forwarded connections go on.
func (s *streamServer) stopAccepting() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.ln != nil {
		s.ln.Close()
	}
	s.pending.Close()
}

// close stops accepting, closes the forwarded connections when the set is
// its own, and waits for the goroutines. It may be called more than once.
func (s *streamServer) close() {
	s.stopAccepting()
	if s.ownSet {
		s.conns.CloseAll()
	}
	s.wg.Wait()
}
