package tcppunch

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hopproxy/hop/pkg/seal"
	"github.com/hopproxy/hop/pkg/xtcp"
)

// authed is a connection that passed the handshake.
type authed struct {
	conn     *net.TCPConn
	sc       *seal.Conn
	path     xtcp.Candidate
	accepted bool // by the listener, not by our connect
}

// punchState counts what happened, for the error of a failed punch.
type punchState struct {
	dials, connected, accepted, refused atomic.Int64
	mu                                  sync.Mutex
	lastDial                            map[xtcp.Candidate]error // the last failure per candidate
	lastAuth                            error
}

func (s *punchState) failDial(r xtcp.Candidate, err error) {
	s.mu.Lock()
	if s.lastDial == nil {
		s.lastDial = map[xtcp.Candidate]error{}
	}
	s.lastDial[r] = err
	s.mu.Unlock()
}

func (s *punchState) failAuth(err error) {
	s.refused.Add(1)
	s.mu.Lock()
	s.lastAuth = err
	s.mu.Unlock()
}

// reset closes c with SO_LINGER 0: a RST, no TIME_WAIT on the port.
func reset(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}

// Punch runs one TCP punch attempt from ep (see the package doc) and
// returns the carrier on the connection both sides chose. It fails with
// ErrTimeout (and the last failure) when no connection is chosen by
// cfg.StartAt + cfg.Timeout, or with the context's error. ep stays open
// and may be closed once Punch returned; the carrier does not need it.
// One Punch at a time may use an endpoint.
func Punch(ctx context.Context, ep *Endpoint, cfg Config) (*Carrier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	log := cfg.Logger.With("session", cfg.SessionID.String(), "role", cfg.Role.String(), "port", ep.Port())
	if d := time.Until(cfg.StartAt); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("tcppunch: waiting for the start: %w", ctx.Err())
		}
	}
	deadline := time.Now().Add(cfg.Timeout)
	pctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	var (
		st      punchState
		wg      sync.WaitGroup
		results = make(chan authed)
	)
	known := map[netip.AddrPort]xtcp.Candidate{}
	for _, r := range cfg.Remote {
		known[netip.AddrPortFrom(r.Addr.Addr().Unmap(), r.Addr.Port())] = r
	}
	// authenticate hands c to the selection if it passes the handshake.
	authenticate := func(c *net.TCPConn, path xtcp.Candidate, accepted bool) {
		hd := time.Now().Add(cfg.HandshakeTimeout)
		if hd.After(deadline) {
			hd = deadline
		}
		// A chosen connection ends the handshakes still running.
		stop := context.AfterFunc(pctx, func() { c.SetDeadline(time.Now()) })
		sc, err := handshake(c, cfg.Key, cfg.SessionID, cfg.Role, hd)
		if !stop() && err == nil {
			err = pctx.Err()
		}
		if err != nil {
			if pctx.Err() == nil {
				st.failAuth(err)
				log.Debug("TCP punch connection refused", "remote", c.RemoteAddr().String(), "error", err)
			}
			reset(c)
			return
		}
		select {
		case results <- authed{c, sc, path, accepted}:
		case <-pctx.Done():
			reset(c)
		}
	}

	// The listener takes SYNs that find no connecting socket.
	ep.ln.SetDeadline(deadline)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ep.ln.AcceptTCP()
			if err != nil {
				return // the deadline, cancel below, or a closed endpoint
			}
			st.accepted.Add(1)
			from := c.RemoteAddr().(*net.TCPAddr).AddrPort()
			from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			path, ok := known[from]
			if !ok {
				path = xtcp.Candidate{Addr: from, Kind: xtcp.PeerReflexive}
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				authenticate(c, path, true)
			}()
		}
	}()
	// Every candidate is dialed over and over from the endpoint's port.
	for _, r := range cfg.Remote {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pctx.Err() == nil {
				dctx, dcancel := context.WithTimeout(pctx, cfg.DialTimeout)
				st.dials.Add(1)
				c, err := ep.sockets.Dial(dctx, ep.local, r.Addr)
				dcancel()
				if err == nil {
					st.connected.Add(1)
					authenticate(c, r, false)
				} else if pctx.Err() == nil {
					st.failDial(r, err)
				}
				t := time.NewTimer(cfg.RetryInterval)
				select {
				case <-t.C:
				case <-pctx.Done():
					t.Stop()
				}
			}
		}()
	}

	var win authed
	var err error
	select {
	case win = <-results:
		if cfg.Role == xtcp.RoleVisitor {
			win.conn.SetWriteDeadline(deadline)
			if werr := win.sc.WriteDatagram([]byte{kindNominate}); werr != nil {
				err = fmt.Errorf("%w: nominating %v: %w", ErrPathDead, win.path, werr)
				reset(win.conn)
			}
			win.conn.SetWriteDeadline(time.Time{})
		}
	case <-pctx.Done():
		err = punchError(ctx, cfg, &st)
	}
	cancel()
	ep.ln.SetDeadline(time.Now()) // wake the acceptor
	wg.Wait()
	ep.ln.SetDeadline(time.Time{})
	if err != nil {
		log.Info("TCP punch failed", "error", err)
		return nil, err
	}
	log.Info("TCP punch succeeded", "path", win.path.String(), "local", win.conn.LocalAddr().String(),
		"by_accept", win.accepted, "dials", st.dials.Load(), "accepted", st.accepted.Load())
	c := newCarrier(win.conn, win.sc, cfg.Role, win.path, cfg.Carrier)
	c.accepted = win.accepted
	return c, nil
}

// punchError says why no connection was chosen.
func punchError(ctx context.Context, cfg Config, st *punchState) error {
	if ctx.Err() != nil {
		return fmt.Errorf("tcppunch: %w", ctx.Err())
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	summary := fmt.Sprintf("%d dials to %d candidates in %v, %d connected, %d accepted",
		st.dials.Load(), len(cfg.Remote), cfg.Timeout, st.connected.Load(), st.accepted.Load())
	switch {
	case st.lastAuth != nil: // the more telling failure
		return fmt.Errorf("%w: %s, %d refused in the handshake; last: %w", ErrTimeout, summary, st.refused.Load(), st.lastAuth)
	case len(st.lastDial) > 0:
		// One line: each candidate's last failure, in the order given;
		// the first of them stays matchable with errors.Is.
		var first error
		var b strings.Builder
		for _, r := range cfg.Remote {
			err, ok := st.lastDial[r]
			if !ok {
				continue
			}
			delete(st.lastDial, r) // once per candidate listed twice
			if first == nil {
				first = fmt.Errorf("%v: %w", r, err)
			} else {
				fmt.Fprintf(&b, "; %v: %v", r, err)
			}
		}
		return fmt.Errorf("%w: %s; last failure per candidate: %w%s", ErrTimeout, summary, first, b.String())
	}
	return fmt.Errorf("%w: %s", ErrTimeout, summary)
}
