package stunserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// Errors returned by this package.
var (
	// ErrInvalidConfig matches every error of Config.Validate.
	ErrInvalidConfig = errors.New("stunserver: invalid config")
	// ErrClosed is what Err reports after Close.
	ErrClosed = errors.New("stunserver: closed")
)

// Config says where the server listens. See the package doc for the sockets
// it makes of it.
type Config struct {
	// Primary is the main address and port, the one clients are told
	// about. Its address may be unspecified (0.0.0.0 or ::) unless AltAddr
	// is set; its port may be 0 to let the kernel pick one.
	Primary netip.AddrPort
	// AltPort is the alternate port, 0 for none.
	AltPort uint16
	// AltAddr is the alternate address, the zero Addr for none. It needs
	// AltPort, a concrete Primary address and the same IP family.
	AltAddr netip.Addr
	// PerIPPerSecond caps the requests answered per second for one source
	// IP address (a token bucket with a burst of as many; sources beyond
	// 4096 remembered share one such bucket). 0 means no limit.
	PerIPPerSecond int
	// MaxDelayed caps the delayed answers (RESPOND-AFTER) waiting to be
	// sent, in total; MaxDelayedPerIP caps those to one source IP. A
	// request beyond either gets error 486 at once. 0 means the defaults,
	// DefaultMaxDelayed and DefaultMaxDelayedPerIP; negative refuses every
	// delayed answer.
	MaxDelayed, MaxDelayedPerIP int
	// Logger gets one line per lifecycle event; nil discards.
	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultMaxDelayed      = 1024
	DefaultMaxDelayedPerIP = 16
)

// Validate checks the config.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	p := c.Primary.Addr()
	if !p.IsValid() {
		return bad("no primary address")
	}
	if c.PerIPPerSecond < 0 {
		return bad("requests per second per IP %d is negative", c.PerIPPerSecond)
	}
	if p.Zone() != "" {
		return bad("primary address %s has a zone", p)
	}
	if c.AltPort != 0 && c.AltPort == c.Primary.Port() {
		return bad("alternate port %d is the primary port", c.AltPort)
	}
	if !c.AltAddr.IsValid() {
		return nil
	}
	a := c.AltAddr
	switch {
	case c.AltPort == 0:
		return bad("alternate address %s needs an alternate port", a)
	case p.IsUnspecified():
		return bad("alternate address %s needs a concrete primary address, not %s", a, p)
	case a.IsUnspecified():
		return bad("alternate address %s is unspecified", a)
	case a.Zone() != "":
		return bad("alternate address %s has a zone", a)
	case p.Unmap().Is4() != a.Unmap().Is4():
		return bad("alternate address %s and primary address %s are of different IP families", a, p)
	case p.Unmap() == a.Unmap():
		return bad("alternate address %s is the primary address", a)
	}
	return nil
}

// Slots of the four possible sockets: bit 1 is "alternate address",
// bit 0 "alternate port".
const (
	slotPrimary = 0
	slotAltPort = 1
	slotAltAddr = 2
	slotAltBoth = 3
	numSlots    = 4
)

// Server is a running STUN server.
type Server struct {
	h       handler
	limit   *limiter
	delayed *delayed
	conns   [numSlots]*net.UDPConn
	log     *slog.Logger

	wg        sync.WaitGroup
	done      chan struct{}
	closeOnce sync.Once
	mu        sync.Mutex
	err       error // first cause of stopping
}

// Listen validates cfg, binds the sockets and starts answering requests.
func Listen(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{log: log, limit: newLimiter(cfg.PerIPPerSecond), done: make(chan struct{})}
	s.delayed = newDelayed(cfg.MaxDelayed, cfg.MaxDelayedPerIP, &s.wg)
	s.h.software = software

	primary := netip.AddrPortFrom(cfg.Primary.Addr().Unmap(), cfg.Primary.Port())
	if err := s.bind(slotPrimary, primary); err != nil {
		return nil, err
	}
	port := s.h.addrs[slotPrimary].Port() // the kernel's pick if Primary.Port() was 0
	var err error
	if cfg.AltPort != 0 {
		err = s.bind(slotAltPort, netip.AddrPortFrom(primary.Addr(), cfg.AltPort))
	}
	if err == nil && cfg.AltAddr.IsValid() {
		alt := cfg.AltAddr.Unmap()
		err = s.bind(slotAltAddr, netip.AddrPortFrom(alt, port))
		if err == nil {
			err = s.bind(slotAltBoth, netip.AddrPortFrom(alt, cfg.AltPort))
		}
	}
	if err != nil {
		for _, c := range s.conns {
			if c != nil {
				c.Close()
			}
		}
		return nil, err
	}

	for i, c := range s.conns {
		if c == nil {
			continue
		}
		s.wg.Add(1)
		go s.serve(i, c)
	}
	log.Info("stun server listening", "addrs", s.Addrs())
	return s, nil
}

// bind opens the socket of slot on ap and records its address.
func (s *Server) bind(slot int, ap netip.AddrPort) error {
	network := "udp4"
	if ap.Addr().Is6() {
		network = "udp6"
		if ap.Addr().IsUnspecified() {
			network = "udp" // dual stack
		}
	}
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return fmt.Errorf("stunserver: listen on %s: %w", ap, err)
	}
	got := c.LocalAddr().(*net.UDPAddr).AddrPort()
	s.conns[slot] = c
	s.h.addrs[slot] = netip.AddrPortFrom(ap.Addr(), got.Port())
	return nil
}

// Addrs returns the addresses of the server's sockets: primary first, then
// alt port, alt addr and alt both, those that exist.
func (s *Server) Addrs() []netip.AddrPort {
	var out []netip.AddrPort
	for _, a := range s.h.addrs {
		if a.IsValid() {
			out = append(out, a)
		}
	}
	return out
}

// Other returns what the server reports as OTHER-ADDRESS to a request on the
// primary socket, or the zero AddrPort if it has no alternate port.
func (s *Server) Other() netip.AddrPort {
	if o, ok := s.h.other(slotPrimary); ok {
		return s.h.addrs[o]
	}
	return netip.AddrPort{}
}

// serve reads requests on conn until it is closed.
func (s *Server) serve(slot int, conn *net.UDPConn) {
	defer s.wg.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) {
				continue // an ICMP error about an earlier response (Windows reports them)
			}
			s.stop(fmt.Errorf("stunserver: reading on %s: %w", s.h.addrs[slot], err))
			return
		}
		resp, out, delay, ok := s.h.handle(buf[:n], from, slot)
		if !ok || !s.limit.allow(from.Addr(), time.Now()) {
			continue
		}
		if delay > 0 {
			conn := s.conns[out]
			send := func() { s.send(conn, resp, from) }
			if s.delayed.schedule(from.Addr(), delay, send) {
				continue
			}
			// Over a cap: say so at once (a probe that cannot run says
			// nothing about the client's NAT).
			if resp, out, ok = s.h.refuseDelayed(buf[:n], slot); !ok {
				continue
			}
		}
		s.send(s.conns[out], resp, from)
	}
}

// send writes one answer.
func (s *Server) send(conn *net.UDPConn, resp []byte, to netip.AddrPort) {
	if _, err := conn.WriteToUDPAddrPort(resp, to); err != nil {
		// Unreachable clients and local firewalls are the client's
		// problem, not the server's (and after Close the socket is gone).
		s.log.Debug("stun response not sent", "to", to, "from", conn.LocalAddr(), "err", err)
	}
}

// stop records cause, if it is the first, and closes every socket.
func (s *Server) stop(cause error) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.err = cause
		s.mu.Unlock()
		if errors.Is(cause, ErrClosed) {
			s.log.Info("stun server closed", "addrs", s.Addrs())
		} else {
			s.log.Error("stun server stopped", "addrs", s.Addrs(), "err", cause)
		}
		s.delayed.close()
		for _, c := range s.conns {
			if c != nil {
				c.Close()
			}
		}
		close(s.done)
	})
}

// Close stops the server and waits for its goroutines. It returns nil, or
// the error that had stopped the server before. It is safe to call more
// than once and from several goroutines.
func (s *Server) Close() error {
	s.stop(ErrClosed)
	s.wg.Wait()
	if err := s.Err(); !errors.Is(err, ErrClosed) {
		return err
	}
	return nil
}

// Dropped is the number of answers not sent because their source IP was
// over Config.PerIPPerSecond.
func (s *Server) Dropped() uint64 {
	_, d := s.limit.stats()
	return d
}

// Delayed is the number of delayed answers (RESPOND-AFTER) waiting to be
// sent.
func (s *Server) Delayed() int { return s.delayed.pending() }

// Done is closed when the server has stopped, by Close or because reading
// from a socket failed.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err returns nil while the server runs, ErrClosed after Close, or the error
// that stopped it.
func (s *Server) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
