package portmap

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Sentinel errors. Errors returned by this package wrap one of them; check
// with errors.Is.
var (
	// ErrNoGateway: no protocol got any answer from the gateway (nothing
	// listens for PCP/NAT-PMP, no IGD answered SSDP). The request stays
	// registered and is retried in the background with backoff.
	ErrNoGateway = errors.New("portmap: no port-mapping gateway answered")

	// ErrNoDefaultRoute: Config.Gateway is not set and the routing table
	// has no IPv4 default route with a gateway.
	ErrNoDefaultRoute = errors.New("portmap: no default route gateway")

	// ErrUnsupported: the gateway answered but does not speak this protocol
	// version or opcode (for example a NAT-PMP-only gateway asked PCP, or a
	// PEER request to a NAT-PMP or UPnP gateway).
	ErrUnsupported = errors.New("portmap: protocol not supported by the gateway")

	// ErrRefused: the gateway answered with an error result (not
	// authorized, no resources, conflicting mapping, SOAP fault...).
	ErrRefused = errors.New("portmap: gateway refused the request")

	// ErrMalformed: a response could not be decoded.
	ErrMalformed = errors.New("portmap: malformed response")

	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("portmap: client closed")

	// ErrBadRequest: an argument to Map, Peer or Unmap is invalid.
	ErrBadRequest = errors.New("portmap: bad request")
)

// errUnanswered marks an attempt that got no answer at all (timeout or ICMP
// port unreachable): the difference between "no gateway speaks this" and "a
// gateway said no". It wraps into ErrNoGateway when every method is
// unanswered.
var errUnanswered = errors.New("no answer")

// A Method is a port-mapping protocol.
type Method string

// The methods, in the default order of Config.Methods.
const (
	MethodPCP    Method = "pcp"
	MethodNATPMP Method = "natpmp"
	MethodUPnP   Method = "upnp"
)

// DefaultMethods is the order in which protocols are tried: PCP first (it
// renews by nonce and can extend punched flows with PEER), NAT-PMP on the
// same port next (older Apple and miniupnpd gateways), UPnP IGD last (it
// needs SSDP plus HTTP/SOAP round trips).
var DefaultMethods = []Method{MethodPCP, MethodNATPMP, MethodUPnP}

// Defaults of Config.
const (
	DefaultLifetime    = 2 * time.Hour
	DefaultTimeout     = 2 * time.Second
	DefaultRetryMin    = 30 * time.Second
	DefaultRetryMax    = 10 * time.Minute
	DefaultDescription = "hop"

	// maxLifetime is the longest lease UPnP IGDv2 accepts (604800 s).
	maxLifetime = 7 * 24 * time.Hour
	// minRenew is the shortest wait before a renewal, so that a gateway
	// granting 0 or 1 s does not make the loop spin.
	minRenew = time.Second
	// retransmitInitial is the first NAT-PMP/PCP retransmission interval
	// (RFC 6886 section 3.1); it doubles until Timeout.
	retransmitInitial = 250 * time.Millisecond
)

// Net opens the sockets the Client uses: UDP to the gateway's port 5351
// (connected, via DialContext "udp4"), TCP to the gateway's UPnP HTTP server
// (DialContext "tcp" or "tcp4"), and one unconnected UDP socket per SSDP
// search (ListenPacket "udp4"). Tests pass fakes or a namespace-bound
// implementation; nil means the host's network stack.
type Net interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
	ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error)
}

type stdNet struct {
	d  net.Dialer
	lc net.ListenConfig
}

func (s *stdNet) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return s.d.DialContext(ctx, network, address)
}

func (s *stdNet) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	return s.lc.ListenPacket(ctx, network, address)
}

// Config configures a Client. The zero value uses the defaults.
type Config struct {
	// Logger receives one line per event (mapping created, renewed
	// failed, re-created, deleted, no gateway). Nil discards.
	Logger *slog.Logger

	// Gateway overrides the gateway address; zero means the default
	// route's gateway (DefaultGateway), read again on every rediscovery.
	Gateway netip.Addr

	// LocalAddr is this host's address toward the gateway, sent as the
	// PCP client address and the UPnP NewInternalClient. Zero means the
	// source address the kernel picks for the gateway.
	LocalAddr netip.Addr

	// Lifetime is the lifetime requested for each mapping (default 2h,
	// at most 7 days). Mappings are renewed at half the lifetime the
	// gateway granted.
	Lifetime time.Duration

	// Timeout bounds every network step: one PCP or NAT-PMP exchange
	// (with retransmissions from 250 ms doubling), one SSDP search, one
	// HTTP request. Default 2s.
	Timeout time.Duration

	// RetryMin and RetryMax bound the backoff between attempts for a
	// mapping that could not be made (default 30s doubling up to 10m,
	// with jitter).
	RetryMin, RetryMax time.Duration

	// Methods is the order in which protocols are tried; default
	// DefaultMethods. A single entry forces that protocol.
	Methods []Method

	// Description is the UPnP NewPortMappingDescription (default "hop").
	Description string

	// OnChange, if set, is called from the Client's goroutine each time
	// the background renewal changes a mapping: re-created with another
	// external address, port or method, or lost (External not valid). It
	// is not called for the result Map itself returns. It must not block
	// for long and must not call Close.
	OnChange func(Mapping)

	// Net opens the sockets; nil means the host's network stack.
	Net Net
}

// Validate reports whether c is usable; zero fields mean their defaults.
func (c Config) Validate() error {
	if c.Gateway.IsValid() && !c.Gateway.Unmap().Is4() {
		return fmt.Errorf("portmap: Config.Gateway %s: only IPv4 gateways are supported", c.Gateway)
	}
	if c.LocalAddr.IsValid() && !c.LocalAddr.Unmap().Is4() {
		return fmt.Errorf("portmap: Config.LocalAddr %s: want an IPv4 address", c.LocalAddr)
	}
	if c.Lifetime != 0 && (c.Lifetime < 2*time.Second || c.Lifetime > maxLifetime || c.Lifetime%time.Second != 0) {
		return fmt.Errorf("portmap: Config.Lifetime %v: want whole seconds between 2s and %v (0 for %v)", c.Lifetime, maxLifetime, DefaultLifetime)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Timeout", c.Timeout}, {"RetryMin", c.RetryMin}, {"RetryMax", c.RetryMax}} {
		if d.v < 0 {
			return fmt.Errorf("portmap: Config.%s %v: want a positive duration (0 for the default)", d.name, d.v)
		}
	}
	if c.RetryMin != 0 && c.RetryMax != 0 && c.RetryMin > c.RetryMax {
		return fmt.Errorf("portmap: Config.RetryMin %v is above RetryMax %v", c.RetryMin, c.RetryMax)
	}
	seen := map[Method]bool{}
	for _, m := range c.Methods {
		switch m {
		case MethodPCP, MethodNATPMP, MethodUPnP:
		default:
			return fmt.Errorf("portmap: Config.Methods: unknown method %q, want %q, %q or %q", m, MethodPCP, MethodNATPMP, MethodUPnP)
		}
		if seen[m] {
			return fmt.Errorf("portmap: Config.Methods: %q listed twice", m)
		}
		seen[m] = true
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Lifetime == 0 {
		c.Lifetime = DefaultLifetime
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.RetryMin == 0 {
		c.RetryMin = DefaultRetryMin
		if c.RetryMax != 0 && c.RetryMax < c.RetryMin {
			c.RetryMin = c.RetryMax
		}
	}
	if c.RetryMax == 0 {
		c.RetryMax = max(DefaultRetryMax, c.RetryMin)
	}
	if len(c.Methods) == 0 {
		c.Methods = DefaultMethods
	}
	c.Methods = slices.Clone(c.Methods)
	if c.Description == "" {
		c.Description = DefaultDescription
	}
	if c.Net == nil {
		c.Net = &stdNet{}
	}
	c.Gateway = c.Gateway.Unmap()
	c.LocalAddr = c.LocalAddr.Unmap()
	return c
}

// A Mapping is a port opened on the gateway toward this host.
type Mapping struct {
	Protocol     string         // "udp" or "tcp"
	InternalPort uint16         // the port on this host
	Remote       netip.AddrPort // the peer of a PCP PEER mapping; invalid for MAP
	External     netip.AddrPort // as the gateway reports it; invalid when lost
	Method       Method
	Lifetime     time.Duration // granted; 0 for a permanent UPnP lease
	Expires      time.Time     // zero for a permanent UPnP lease
	Gateway      netip.Addr
}

// Valid reports whether the mapping is in place.
func (m Mapping) Valid() bool { return m.External.IsValid() }

// ProbeResult says which protocols the gateway answered.
type ProbeResult struct {
	Gateway  netip.Addr
	PCP      bool       // answered a PCP ANNOUNCE
	NATPMP   bool       // answered a NAT-PMP external address request
	UPnP     bool       // an IGD answered SSDP and GetExternalIPAddress
	Service  string     // the UPnP service, e.g. "WANIPConnection:2"
	External netip.Addr // the external address reported by NAT-PMP or UPnP
	// PCPErr, NATPMPErr and UPnPErr say why a protocol did not answer.
	PCPErr, NATPMPErr, UPnPErr error
}

// mapKey identifies a mapping request.
type mapKey struct {
	proto  string
	port   uint16
	remote netip.AddrPort // PCP PEER
}

// mapping is the state of one requested mapping.
type mapping struct {
	key        mapKey
	nonce      [12]byte // PCP, kept for the mapping's life
	cur        Mapping  // cur.Method == "" while not mapped
	renewAt    time.Time
	retryAt    time.Time
	retryDelay time.Duration
	lastErr    string // of the last failed attempt, to log a failure once
}

func (m *mapping) active() bool { return m.cur.Method != "" }

// epochState tracks a PCP or NAT-PMP server's epoch (RFC 6887 section 8.5,
// RFC 6886 section 3.6).
type epochState struct {
	valid bool
	epoch uint32
	at    time.Time
}

// update records a server epoch seen at now and reports whether it shows
// that the server lost its state since the previous one.
func (e *epochState) update(epoch uint32, now time.Time) (reset bool) {
	if e.valid {
		client := int64(now.Sub(e.at) / time.Second)
		server := int64(epoch) - int64(e.epoch)
		switch {
		case server < 0:
			reset = true
		case client+2 < server-server/16, server+2 < client-client/16:
			reset = true
		}
	}
	*e = epochState{valid: true, epoch: epoch, at: now}
	return reset
}

// A Client maps ports on the gateway and keeps them mapped. Make one with
// New; Close deletes its mappings.
type Client struct {
	cfg  Config
	log  *slog.Logger
	http *http.Client

	// Test knobs: the gateway's PCP/NAT-PMP port and the SSDP address.
	pmpPort  uint16
	ssdpAddr netip.AddrPort

	// op is held for every exchange with the gateway, so that Map, Probe,
	// the renewal loop and Close never talk to it at the same time.
	op chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	wake   chan struct{}

	mu        sync.Mutex
	closed    bool
	gw, local netip.Addr
	igd       *igd
	pmpExt    netip.Addr
	epochs    map[Method]*epochState
	reset     bool // the gateway lost its state or moved: re-create everything
	// resetKnown: the reset comes with the gateway just found again
	// (upnpMap): re-create on it, without searching for it once more.
	resetKnown bool
	good       Method // the method of the last mapping made; tried first
	maps       map[mapKey]*mapping
	quiet      bool // "no port-mapping gateway" was logged
	closeOnce  sync.Once
	closeErr   error
}

// New returns a Client and starts its renewal goroutine. It does not touch
// the network until Map or Probe.
func New(cfg Config) (*Client, error) {
	return newClient(cfg, 5351, netip.MustParseAddrPort("239.255.255.250:1900"))
}

// newClient is New with the gateway's PCP/NAT-PMP port and the SSDP address
// chosen (tests point them at loopback fakes).
func newClient(cfg Config, pmpPort uint16, ssdpAddr netip.AddrPort) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		cfg:      cfg,
		log:      cfg.Logger,
		pmpPort:  pmpPort,
		ssdpAddr: ssdpAddr,
		op:       make(chan struct{}, 1),
		ctx:      ctx,
		cancel:   cancel,
		wake:     make(chan struct{}, 1),
		epochs:   map[Method]*epochState{MethodPCP: {}, MethodNATPMP: {}},
		maps:     make(map[mapKey]*mapping),
	}
	c.http = c.newHTTPClient()
	c.wg.Add(1)
	go c.loop()
	return c, nil
}

// lock takes the gateway-operation lock, or fails when ctx ends first.
func (c *Client) lock(ctx context.Context) error {
	select {
	case c.op <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (c *Client) unlock() { <-c.op }

// opCtx returns ctx also cancelled by Close.
func (c *Client) opCtx(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(c.ctx, func() { cancel(ErrClosed) })
	return ctx, func() { stop(); cancel(nil) }
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func checkProto(proto string, port uint16) error {
	if proto != "udp" && proto != "tcp" {
		return fmt.Errorf("%w: protocol %q, want \"udp\" or \"tcp\"", ErrBadRequest, proto)
	}
	if port == 0 {
		return fmt.Errorf("%w: internal port 0, want the port the local socket is bound to", ErrBadRequest)
	}
	return nil
}

// Map asks the gateway to forward proto ("udp" or "tcp") traffic arriving
// on an external port to internalPort on this host, trying Config.Methods in
// order, and keeps the mapping renewed until Unmap or Close. A second call
// for the same protocol and port returns the mapping in place.
//
// When no method succeeds the request stays registered: the Client retries
// in the background with backoff and reports success through OnChange. Every
// network step is bounded by Config.Timeout, so Map returns within a few
// Timeouts even when nothing answers (error wrapping ErrNoGateway): with
// the default methods about 4 × Timeout (PCP, NAT-PMP, SSDP for IGDv2, SSDP
// for IGDv1), 8 s with the default Timeout.
func (c *Client) Map(ctx context.Context, proto string, internalPort uint16) (Mapping, error) {
	if err := checkProto(proto, internalPort); err != nil {
		return Mapping{}, err
	}
	return c.mapKey(ctx, mapKey{proto: proto, port: internalPort})
}

// Peer asks a PCP gateway (RFC 6887 PEER opcode) to keep, and extend to the
// Client's lifetime, the mapping of the flow between internalPort and remote,
// for example a hole-punched UDP flow. Only PCP has PEER: without a PCP
// gateway the error wraps ErrUnsupported or ErrNoGateway. The mapping is
// renewed like those of Map; Unmap with the same arguments ends it.
func (c *Client) Peer(ctx context.Context, proto string, internalPort uint16, remote netip.AddrPort) (Mapping, error) {
	if err := checkProto(proto, internalPort); err != nil {
		return Mapping{}, err
	}
	if !remote.IsValid() || remote.Port() == 0 || !remote.Addr().Unmap().Is4() {
		return Mapping{}, fmt.Errorf("%w: PEER remote %v, want an IPv4 address and a port", ErrBadRequest, remote)
	}
	if !slices.Contains(c.cfg.Methods, MethodPCP) {
		return Mapping{}, fmt.Errorf("%w: PEER needs PCP, which Config.Methods leaves out", ErrUnsupported)
	}
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	return c.mapKey(ctx, mapKey{proto: proto, port: internalPort, remote: remote})
}

func (c *Client) mapKey(ctx context.Context, k mapKey) (Mapping, error) {
	ctx, done := c.opCtx(ctx)
	defer done()
	if err := c.lock(ctx); err != nil {
		return Mapping{}, err
	}
	defer c.unlock()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return Mapping{}, ErrClosed
	}
	m, ok := c.maps[k]
	if ok && m.active() {
		cur := m.cur
		c.mu.Unlock()
		return cur, nil
	}
	if !ok {
		m = &mapping{key: k}
		if _, err := crand.Read(m.nonce[:]); err != nil {
			c.mu.Unlock()
			return Mapping{}, fmt.Errorf("portmap: PCP nonce: %w", err)
		}
		c.maps[k] = m
	}
	c.mu.Unlock()

	_, err := c.create(ctx, m)
	c.poke()
	if err != nil {
		return Mapping{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return m.cur, nil
}

// Unmap deletes the mapping made by Map (remote invalid) or Peer and stops
// renewing it.
func (c *Client) Unmap(ctx context.Context, proto string, internalPort uint16, remote netip.AddrPort) error {
	if err := checkProto(proto, internalPort); err != nil {
		return err
	}
	if remote.IsValid() {
		remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	}
	k := mapKey{proto: proto, port: internalPort, remote: remote}
	ctx, done := c.opCtx(ctx)
	defer done()
	if err := c.lock(ctx); err != nil {
		return err
	}
	defer c.unlock()
	c.mu.Lock()
	m, ok := c.maps[k]
	delete(c.maps, k)
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: no mapping of %s port %d", ErrBadRequest, proto, internalPort)
	}
	return c.deleteMapping(ctx, m)
}

// Mappings returns the current state of every requested mapping (lost or
// not yet made ones with External invalid).
func (c *Client) Mappings() []Mapping {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Mapping, 0, len(c.maps))
	for _, m := range c.maps {
		cur := m.cur
		if !m.active() {
			cur = Mapping{Protocol: m.key.proto, InternalPort: m.key.port, Remote: m.key.remote}
		}
		out = append(out, cur)
	}
	slices.SortFunc(out, func(a, b Mapping) int {
		if a.Protocol != b.Protocol {
			if a.Protocol < b.Protocol {
				return -1
			}
			return 1
		}
		return int(a.InternalPort) - int(b.InternalPort)
	})
	return out
}

func (c *Client) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// gateway returns the gateway and local address, discovering them if
// needed. Called with op held.
func (c *Client) gateway(ctx context.Context) (gw, local netip.Addr, err error) {
	c.mu.Lock()
	gw, local = c.gw, c.local
	c.mu.Unlock()
	if gw.IsValid() && local.IsValid() {
		return gw, local, nil
	}
	gw = c.cfg.Gateway
	if !gw.IsValid() {
		if gw, err = DefaultGateway(); err != nil {
			return gw, local, err
		}
	}
	local = c.cfg.LocalAddr
	if !local.IsValid() {
		// A connected UDP socket sends nothing; it only asks the kernel
		// which source address it would use.
		conn, err := c.cfg.Net.DialContext(ctx, "udp4", netip.AddrPortFrom(gw, c.pmpPort).String())
		if err != nil {
			return gw, local, fmt.Errorf("portmap: finding the local address toward %s: %w", gw, err)
		}
		if ua, ok := conn.LocalAddr().(*net.UDPAddr); ok {
			local, _ = netip.AddrFromSlice(ua.IP)
			local = local.Unmap()
		}
		conn.Close()
		if !local.IsValid() {
			return gw, local, fmt.Errorf("portmap: no local IPv4 address toward %s", gw)
		}
	}
	c.mu.Lock()
	c.gw, c.local = gw, local
	c.mu.Unlock()
	return gw, local, nil
}

// forget drops everything learnt about the gateway, so the next operation
// discovers it again.
func (c *Client) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gw, c.local, c.igd, c.pmpExt, c.good = netip.Addr{}, netip.Addr{}, nil, netip.Addr{}, ""
	c.epochs = map[Method]*epochState{MethodPCP: {}, MethodNATPMP: {}}
}

func (c *Client) currentGateway() netip.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gw
}

// noteEpoch records a PCP or NAT-PMP epoch and flags a reset.
func (c *Client) noteEpoch(m Method, epoch uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epochs[m].update(epoch, time.Now()) {
		c.reset, c.resetKnown = true, false
		c.log.Warn("port-mapping gateway lost its state (epoch went back); re-creating every mapping",
			"method", m, "gateway", c.gw, "epoch", epoch)
		c.poke()
	}
}

// exchange sends req to the gateway's PCP/NAT-PMP port, retransmitting from
// 250 ms doubling, until match accepts a response or Timeout passes. match
// returns (false, nil) to ignore a packet.
func (c *Client) exchange(ctx context.Context, gw netip.Addr, req []byte, match func([]byte) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	addr := netip.AddrPortFrom(gw, c.pmpPort)
	conn, err := c.cfg.Net.DialContext(ctx, "udp4", addr.String())
	if err != nil {
		return fmt.Errorf("dialing %s: %w", addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, pcpMaxLen+4)
	wait := retransmitInitial
	for {
		if _, err := conn.Write(req); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%w from %s within %v", errUnanswered, addr, c.cfg.Timeout)
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				return fmt.Errorf("%w: %s: port unreachable", errUnanswered, addr)
			}
			return fmt.Errorf("sending to %s: %w", addr, err)
		}
		conn.SetReadDeadline(time.Now().Add(wait))
		for {
			n, err := conn.Read(buf)
			if err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("%w from %s within %v", errUnanswered, addr, c.cfg.Timeout)
				}
				if errors.Is(err, syscall.ECONNREFUSED) {
					return fmt.Errorf("%w: %s: port unreachable", errUnanswered, addr)
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break // retransmit
				}
				return fmt.Errorf("reading from %s: %w", addr, err)
			}
			ok, err := match(buf[:n])
			if err != nil || ok {
				return err
			}
		}
		wait *= 2
	}
}

// attempt makes, renews (lifetime > 0) or deletes (lifetime 0) m with one
// method. Called with op held.
func (c *Client) attempt(ctx context.Context, method Method, m *mapping, lifetime uint32) (Mapping, error) {
	gw, local, err := c.gateway(ctx)
	if err != nil {
		return Mapping{}, err
	}
	var res Mapping
	switch method {
	case MethodPCP:
		res, err = c.pcpMap(ctx, gw, local, m, lifetime)
	case MethodNATPMP:
		res, err = c.pmpMap(ctx, gw, m, lifetime)
	case MethodUPnP:
		res, err = c.upnpMap(ctx, gw, local, m, lifetime)
	}
	if err != nil {
		return Mapping{}, fmt.Errorf("%s: %w", method, err)
	}
	res.Protocol, res.InternalPort, res.Remote, res.Method, res.Gateway = m.key.proto, m.key.port, m.key.remote, method, gw
	if res.Lifetime > 0 {
		res.Expires = time.Now().Add(res.Lifetime)
	}
	return res, nil
}

func (c *Client) lifetimeSeconds() uint32 { return uint32(c.cfg.Lifetime / time.Second) }

// renewDelay is when to renew a mapping of lifetime d: half of it, at least
// minRenew; permanent (UPnP lease 0) mappings are checked at half the
// configured lifetime.
func (c *Client) renewDelay(d time.Duration) time.Duration {
	if d == 0 {
		d = c.cfg.Lifetime
	}
	return max(d/2, minRenew)
}

// create makes m with the first method that works, in Config.Methods order.
// It records the result in m and returns whether the mapping changed. With
// op held.
func (c *Client) create(ctx context.Context, m *mapping) (changed bool, err error) {
	var errs []error
	answered := false
	for _, method := range c.methodOrder() {
		if m.key.remote.IsValid() && method != MethodPCP {
			continue
		}
		res, err := c.attempt(ctx, method, m, c.lifetimeSeconds())
		if err == nil {
			c.mu.Lock()
			old := m.cur
			m.cur = res
			m.renewAt = time.Now().Add(c.renewDelay(res.Lifetime))
			m.retryDelay, m.lastErr = 0, ""
			wasQuiet := c.quiet
			c.quiet, c.good = false, method
			c.mu.Unlock()
			changed = old.External != res.External || old.Method != res.Method
			if changed {
				c.log.Info("port mapping created", "proto", m.key.proto, "port", m.key.port,
					"external", res.External, "method", method, "lifetime", res.Lifetime, "gateway", res.Gateway)
			}
			if wasQuiet {
				c.log.Info("port-mapping gateway answers again", "method", method, "gateway", res.Gateway)
			}
			return changed, nil
		}
		if !isUnanswered(err) {
			answered = true
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	err = errors.Join(errs...)
	if ctx.Err() != nil {
		// Cancelled (by the caller or Close), not unanswered: keep the
		// state as it was, so that Close still deletes what exists.
		c.mu.Lock()
		if !m.active() {
			m.retryAt = time.Now().Add(jitter(c.cfg.RetryMin))
		}
		c.mu.Unlock()
		return false, fmt.Errorf("portmap: mapping %s port %d: %w (%w)", m.key.proto, m.key.port, context.Cause(ctx), err)
	}
	c.mu.Lock()
	lost := m.active()
	m.cur = Mapping{}
	if m.retryDelay == 0 {
		m.retryDelay = c.cfg.RetryMin
	} else {
		m.retryDelay = min(m.retryDelay*2, c.cfg.RetryMax)
	}
	retry := jitter(m.retryDelay)
	m.retryAt = time.Now().Add(retry)
	logIt := !answered && !c.quiet
	if !answered {
		c.quiet = true
	}
	c.mu.Unlock()
	if !answered {
		err = fmt.Errorf("%w: %w", ErrNoGateway, err)
		if logIt {
			c.log.Warn("no port-mapping gateway: UPnP, NAT-PMP and PCP unanswered",
				"methods", fmt.Sprint(c.cfg.Methods), "retry", retry.Round(10*time.Millisecond), "err", err)
		} else {
			c.log.Debug("still no port-mapping gateway", "proto", m.key.proto, "port", m.key.port, "retry", retry.Round(10*time.Millisecond))
		}
	} else {
		// Warn once per distinct failure of a mapping, not on every retry.
		c.mu.Lock()
		repeat := m.lastErr == err.Error()
		m.lastErr = err.Error()
		c.mu.Unlock()
		level := slog.LevelWarn
		if repeat {
			level = slog.LevelDebug
		}
		c.log.Log(ctx, level, "port mapping failed", "proto", m.key.proto, "port", m.key.port, "retry", retry.Round(10*time.Millisecond), "err", err)
	}
	return lost, err
}

// methodOrder is Config.Methods with the method of the last mapping made
// first: once a gateway is known to speak only UPnP, say, a new mapping
// does not wait for PCP and NAT-PMP to fail first (with ICMP rate limited,
// a "port unreachable" may not come, and each then costs a Timeout).
// Rediscovery (forget) goes back to the configured order.
func (c *Client) methodOrder() []Method {
	c.mu.Lock()
	good := c.good
	c.mu.Unlock()
	if good == "" || good == c.cfg.Methods[0] {
		return c.cfg.Methods
	}
	order := []Method{good}
	for _, m := range c.cfg.Methods {
		if m != good {
			order = append(order, m)
		}
	}
	return order
}

// isUnanswered reports whether err means that nothing answered: a timeout,
// an ICMP port unreachable, no route, no default gateway.
func isUnanswered(err error) bool {
	return errors.Is(err, errUnanswered) || errors.Is(err, ErrNoDefaultRoute) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH)
}

func jitter(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5+1)
}

// deleteMapping removes m from the gateway. With op held.
func (c *Client) deleteMapping(ctx context.Context, m *mapping) error {
	c.mu.Lock()
	cur := m.cur
	c.mu.Unlock()
	if cur.Method == "" {
		return nil
	}
	if _, err := c.attempt(ctx, cur.Method, m, 0); err != nil {
		level := slog.LevelWarn
		if m.key.remote.IsValid() && errors.Is(err, ErrRefused) {
			// miniupnpd 2.3.1 (nftables) refuses to delete every PEER
			// mapping (NO_RESOURCES: it cannot find its own rule); the
			// mapping ends with its lifetime.
			level = slog.LevelDebug
		}
		c.log.Log(ctx, level, "port mapping not deleted", "proto", m.key.proto, "port", m.key.port,
			"remote", m.key.remote, "method", cur.Method, "err", err)
		return fmt.Errorf("portmap: deleting %s port %d: %w", m.key.proto, m.key.port, err)
	}
	c.mu.Lock()
	m.cur = Mapping{}
	c.mu.Unlock()
	c.log.Info("port mapping deleted", "proto", m.key.proto, "port", m.key.port, "external", cur.External, "method", cur.Method)
	return nil
}

// loop renews mappings at half their lifetime and retries failed ones.
func (c *Client) loop() {
	defer c.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		timer.Reset(c.nextWake())
		select {
		case <-c.ctx.Done():
			return
		case <-c.wake:
		case <-timer.C:
		}
		if err := c.lock(c.ctx); err != nil {
			return
		}
		changes := c.maintain(c.ctx)
		c.unlock()
		if c.cfg.OnChange != nil {
			for _, ch := range changes {
				c.cfg.OnChange(ch)
			}
		}
	}
}

// nextWake returns the wait until the next renewal or retry.
func (c *Client) nextWake() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reset {
		return 0
	}
	next := time.Hour
	now := time.Now()
	for _, m := range c.maps {
		at := m.retryAt
		if m.active() {
			at = m.renewAt
		}
		next = min(next, max(at.Sub(now), 0))
	}
	return next
}

// maintain does the renewals and retries that are due. With op held.
func (c *Client) maintain(ctx context.Context) []Mapping {
	now := time.Now()
	c.mu.Lock()
	recreate, known := c.reset, c.resetKnown
	c.reset, c.resetKnown = false, false
	var due, pending []*mapping
	for _, m := range c.maps {
		switch {
		case m.active() && (recreate || !m.renewAt.After(now)):
			due = append(due, m)
		case !m.active() && !m.retryAt.After(now):
			pending = append(pending, m)
		}
	}
	c.mu.Unlock()

	if !recreate {
		for _, m := range due {
			c.mu.Lock()
			method := m.cur.Method
			c.mu.Unlock()
			res, err := c.attempt(ctx, method, m, c.lifetimeSeconds())
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				c.log.Warn("port mapping renewal failed; discovering the gateway again and re-creating every mapping",
					"proto", m.key.proto, "port", m.key.port, "method", method, "err", err)
				recreate = true
				break
			}
			c.mu.Lock()
			m.cur.External, m.cur.Lifetime, m.cur.Expires = res.External, res.Lifetime, res.Expires
			m.renewAt = time.Now().Add(c.renewDelay(res.Lifetime))
			reset := c.reset
			c.mu.Unlock()
			c.log.Debug("port mapping renewed", "proto", m.key.proto, "port", m.key.port, "external", res.External, "lifetime", res.Lifetime)
			if reset {
				recreate = true
				c.mu.Lock()
				c.reset = false
				c.mu.Unlock()
				break
			}
		}
	}

	var changes []Mapping
	if recreate {
		if !known {
			c.forget()
		}
		c.mu.Lock()
		pending = pending[:0]
		for _, m := range c.maps {
			pending = append(pending, m)
		}
		c.mu.Unlock()
	}
	for _, m := range pending {
		if ctx.Err() != nil {
			return nil
		}
		c.mu.Lock()
		before := m.cur
		c.mu.Unlock()
		changed, err := c.create(ctx, m)
		if ctx.Err() != nil {
			return nil
		}
		c.mu.Lock()
		after := m.cur
		c.mu.Unlock()
		if err == nil && (changed || recreate) {
			if !changed {
				c.log.Info("port mapping re-created", "proto", m.key.proto, "port", m.key.port,
					"external", after.External, "method", after.Method, "lifetime", after.Lifetime, "gateway", after.Gateway)
			}
			changes = append(changes, after)
		} else if err != nil && before.Method != "" {
			changes = append(changes, Mapping{Protocol: m.key.proto, InternalPort: m.key.port, Remote: m.key.remote})
		}
	}
	return changes
}

// Close stops renewing, deletes every mapping from the gateway (each
// deletion bounded by Timeout) and waits for the Client's goroutine. It is
// safe to call more than once; later calls return the first result.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.cancel()
		c.wg.Wait()
		c.op <- struct{}{}
		defer c.unlock()
		c.mu.Lock()
		maps := make([]*mapping, 0, len(c.maps))
		for _, m := range c.maps {
			maps = append(maps, m)
		}
		c.maps = map[mapKey]*mapping{}
		c.mu.Unlock()
		var errs []error
		for _, m := range maps {
			ctx, cancel := context.WithTimeout(context.Background(), 2*c.cfg.Timeout)
			errs = append(errs, c.deleteMapping(ctx, m))
			cancel()
		}
		c.closeErr = errors.Join(errs...)
		c.http.CloseIdleConnections()
	})
	return c.closeErr
}
