package nat

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/pion/stun/v3"
)

// Errors returned by Discover.
var (
	// ErrNoResponse: the server did not answer the first Binding request
	// after every try. Nothing could be learnt.
	ErrNoResponse = errors.New("nat: no response from STUN server")
	// ErrRefused: the server answered the first Binding request with an
	// error response.
	ErrRefused = errors.New("nat: STUN server refused the Binding request")
	// ErrInvalidOptions matches every error of Options.Validate.
	ErrInvalidOptions = errors.New("nat: invalid options")
)

// Default values of Options.
const (
	DefaultTries    = 4
	DefaultInterval = 100 * time.Millisecond
	// MaxTries bounds Options.Tries: the wait doubles with every send.
	MaxTries = 8
)

// Options tune Discover. The zero value means the defaults.
type Options struct {
	// Tries is how many times each request is sent before the test counts
	// as unanswered (RFC 8489 §6.2.1 Rc); 0 means DefaultTries, at most
	// MaxTries.
	Tries int
	// Interval is the first retransmission timeout (RFC 8489 RTO): the
	// wait after the first send. It doubles after every send, so that an
	// unanswered test takes Interval×(2^Tries−1) (1.5 s with the
	// defaults); an answered one returns at once. 0 means
	// DefaultInterval.
	Interval time.Duration
	// SkipFiltering leaves out the filtering tests (CHANGE-REQUEST), which
	// behind a filtering NAT wait out the whole retransmission schedule
	// each to come out silent. Filtering is then Unknown, with a note.
	// For callers that need the mapping at once and learnt the filtering
	// earlier.
	SkipFiltering bool
}

// Validate checks the options.
func (o Options) Validate() error {
	if o.Tries < 0 || o.Tries > MaxTries {
		return fmt.Errorf("%w: Tries %d is not in 0-%d", ErrInvalidOptions, o.Tries, MaxTries)
	}
	if o.Interval < 0 {
		return fmt.Errorf("%w: Interval %v is negative", ErrInvalidOptions, o.Interval)
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.Tries == 0 {
		o.Tries = DefaultTries
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	return o
}

// Window is how long a test waits for an answer before it counts as
// unanswered: Interval×(2^Tries−1), with the defaults filled in.
func (o Options) Window() time.Duration {
	o = o.withDefaults()
	return o.Interval * time.Duration(1<<o.Tries-1)
}

// Discover finds the public address of conn and the behaviour of the NAT in
// front of it by talking to the STUN server at server (an hop
// stunserver or any RFC 5780 server). See the package doc for the tests and
// their order.
//
// conn stays open and usable: Discover sends from it, reads from it on the
// calling goroutine with read deadlines, and before returning clears the
// read deadline (to none) and leaves nothing running on it. Meanwhile the
// caller must not read from conn; datagrams that are not answers to
// Discover's requests are read and dropped.
//
// When conn is bound to an unspecified address, Discover asks the kernel for
// the source address it would use towards server (by connecting a second
// UDP socket, which sends nothing); that lookup happens in the network
// namespace of the calling thread.
//
// Discover fails with ErrNoResponse or ErrRefused when the first Binding
// request gets no usable answer, with ctx's error when ctx ends first, and
// with the error of conn when sending or reading fails. Any later test that
// gets no answer only makes the report less complete.
func Discover(ctx context.Context, conn net.PacketConn, server netip.AddrPort, opts Options) (_ *Report, err error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	server = netip.AddrPortFrom(server.Addr().Unmap(), server.Port())
	if !server.Addr().IsValid() || server.Addr().IsUnspecified() || server.Port() == 0 {
		return nil, fmt.Errorf("nat: invalid STUN server address %v", server)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Cancelling ctx interrupts a blocked read; the deferred function makes
	// sure the callback has finished before the deadline is cleared.
	interrupted := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		conn.SetReadDeadline(time.Now())
		close(interrupted)
	})
	defer func() {
		if !stop() {
			<-interrupted
		}
		if derr := conn.SetReadDeadline(time.Time{}); derr != nil && err == nil {
			err = fmt.Errorf("nat: clearing read deadline: %w", derr)
		}
	}()

	d := &discovery{ctx: ctx, conn: conn, opts: opts, buf: make([]byte, 1500)}
	return d.run(server)
}

// discovery is one run of Discover.
type discovery struct {
	ctx  context.Context
	conn net.PacketConn
	opts Options
	buf  []byte
}

// outcome of one test.
type outcome int

const (
	notRun       outcome = iota
	answered             // success response from where it should come from
	silent               // no answer after every try (filtering tests: while the control was answered)
	refused              // error response
	inconclusive         // success response from the wrong place
	lost                 // filtering tests: no answer, and none to the control sent alongside either
)

// result is one test's outcome with what was received.
type result struct {
	outcome outcome
	resp    response
	from    netip.AddrPort
}

// request is one Binding transaction of an exchange.
type request struct {
	dst  netip.AddrPort
	txid [stun.TransactionIDSize]byte
	raw  []byte
	res  result // outcome notRun until an answer came
}

func newReq(dst netip.AddrPort, changeIP, changePort bool) *request {
	txid, raw := newRequest(changeIP, changePort)
	return &request{dst: dst, txid: txid, raw: raw}
}

// result is the request's outcome: silent if no answer came.
func (q *request) result() result {
	if q.res.outcome == notRun {
		return result{outcome: silent}
	}
	return q.res
}

func (d *discovery) run(server netip.AddrPort) (*Report, error) {
	r := &Report{Server: server, LocalAddr: localAddr(d.conn, server)}

	// Test I: Binding to the server as given.
	first, err := d.transact(server, false, false)
	if err != nil {
		return nil, err
	}
	switch first.outcome {
	case silent:
		return nil, fmt.Errorf("%w: %v did not answer %d sends over %v", ErrNoResponse, server, d.opts.Tries, d.opts.Window())
	case refused:
		return nil, fmt.Errorf("%w: %v answered %d %q", ErrRefused, server, first.resp.code, first.resp.reason)
	}
	r.Mapped = first.resp.mapped
	r.PortPreserved = r.Mapped.Port() == r.LocalAddr.Port()
	r.Probes = append(r.Probes, Probe{To: server, Mapped: r.Mapped})
	r.Other = resolveOther(server, first.resp)
	altAddr := r.Other.IsValid() && r.Other.Addr() != server.Addr()
	altPort := r.Other.IsValid() && r.Other.Port() != server.Port()

	// Filtering first: until now only the server's primary endpoint has
	// been sent to, so the NAT has no reason yet to let in packets from
	// the alternate ones.
	var ipTest, portTest result
	if !d.opts.SkipFiltering {
		if ipTest, portTest, err = d.filteringTests(server, altAddr, altPort); err != nil {
			return nil, err
		}
	}

	// Mapping: the same socket towards each alternate endpoint.
	var dests []netip.AddrPort
	if altPort {
		dests = append(dests, netip.AddrPortFrom(server.Addr(), r.Other.Port()))
	}
	if altAddr {
		dests = append(dests, netip.AddrPortFrom(r.Other.Addr(), server.Port()))
		if altPort {
			dests = append(dests, r.Other)
		}
	}
	for _, dst := range dests {
		res, err := d.transact(dst, false, false)
		if err != nil {
			return nil, err
		}
		p := Probe{To: dst}
		if res.outcome == answered {
			p.Mapped = res.resp.mapped
		}
		r.Probes = append(r.Probes, p)
	}

	r.Mapping, r.MappingNote = classifyMapping(server, r.Other, first.resp.other.IsValid(), r.Probes)
	if d.opts.SkipFiltering {
		r.Filtering, r.FilteringNote = Unknown, "not tested (SkipFiltering)"
	} else {
		r.Filtering, r.FilteringNote = classifyFiltering(server, r.Other, first.resp.other.IsValid(), ipTest, portTest, r.Probes)
	}
	r.Deltas = deltas(r.Probes)
	return r, nil
}

// filteringTests run the CHANGE-REQUEST tests: change IP and port when the
// server has an alternate address, else (or when that got no answer)
// change port. Each is sent together with a control, a plain Binding
// request to the same server endpoint: a test that gets no answer counts
// as silent (filtered) only if the control was answered in the same
// window, otherwise as lost.
func (d *discovery) filteringTests(server netip.AddrPort, altAddr, altPort bool) (ipTest, portTest result, err error) {
	controlled := func(changeIP, changePort bool) (result, error) {
		q, ctl := newReq(server, changeIP, changePort), newReq(server, false, false)
		if err := d.exchange(q, ctl); err != nil {
			return result{}, err
		}
		res := q.result()
		if res.outcome == silent && ctl.res.outcome != answered {
			res.outcome = lost
		}
		return res, nil
	}
	if altAddr {
		if ipTest, err = controlled(true, altPort); err != nil {
			return ipTest, portTest, err
		}
		if ipTest.outcome == answered && (ipTest.from.Addr() == server.Addr() || altPort && ipTest.from.Port() == server.Port()) {
			ipTest.outcome = inconclusive
		}
	}
	if altPort && ipTest.outcome != answered {
		if portTest, err = controlled(false, true); err != nil {
			return ipTest, portTest, err
		}
		if portTest.outcome == answered && portTest.from.Port() == server.Port() {
			portTest.outcome = inconclusive
		}
	}
	return ipTest, portTest, nil
}

// resolveOther turns the server's OTHER-ADDRESS into an endpoint this
// client can send to. The server describes its sockets as it sees them:
// an unspecified IP, or the IP it also gives as RESPONSE-ORIGIN (a server
// behind a 1:1 NAT reports its private address), means the address the
// request was sent to. It returns the zero AddrPort when there is no usable
// alternate endpoint.
func resolveOther(server netip.AddrPort, resp response) netip.AddrPort {
	o := resp.other
	if !o.IsValid() || o.Port() == 0 {
		return netip.AddrPort{}
	}
	ip := o.Addr().Unmap()
	if ip.IsUnspecified() || (resp.origin.IsValid() && ip == resp.origin.Addr().Unmap()) {
		ip = server.Addr()
	}
	if ip.Is4() != server.Addr().Is4() {
		return netip.AddrPort{} // another family than the socket can reach here
	}
	o = netip.AddrPortFrom(ip, o.Port())
	if o == server {
		return netip.AddrPort{}
	}
	return o
}

// transact sends a Binding request to dst, with CHANGE-REQUEST flags if
// asked, on the retransmission schedule of exchange. A test that gets no
// answer is a result (silent), not an error; errors are ctx's or conn's.
func (d *discovery) transact(dst netip.AddrPort, changeIP, changePort bool) (result, error) {
	q := newReq(dst, changeIP, changePort)
	if err := d.exchange(q); err != nil {
		return result{}, err
	}
	return q.result(), nil
}

// exchange runs the requests on the RFC 8489 §6.2.1 schedule: it sends
// every request not answered yet, waits Interval, sends again, waits twice
// as long, and so on, Tries sends in all, the last one followed by the
// longest wait. It returns as soon as reqs[0], the request under test, has
// an answer; the others (controls) are sent along until they have one.
// Answers are matched by transaction ID (every send of a request repeats
// its ID, so an answer to any of them counts) and recorded in the
// requests. Errors are ctx's or conn's.
func (d *discovery) exchange(reqs ...*request) error {
	rto := d.opts.Interval
	for range d.opts.Tries {
		if err := d.expired(); err != nil {
			return err
		}
		for _, q := range reqs {
			if q.res.outcome != notRun {
				continue
			}
			if _, err := d.conn.WriteTo(q.raw, net.UDPAddrFromAddrPort(q.dst)); err != nil {
				if cerr := d.expired(); cerr != nil {
					return cerr
				}
				return fmt.Errorf("nat: sending to %v: %w", q.dst, err)
			}
		}
		deadline := time.Now().Add(rto)
		rto *= 2
		if dl, ok := d.ctx.Deadline(); ok && dl.Before(deadline) {
			deadline = dl
		}
		if err := d.conn.SetReadDeadline(deadline); err != nil {
			return fmt.Errorf("nat: setting read deadline: %w", err)
		}
		// Checked after setting the deadline: a cancellation from now on
		// runs the AfterFunc, which sets the deadline to now.
		if err := d.ctx.Err(); err != nil {
			return err
		}
		for {
			n, addr, err := d.conn.ReadFrom(d.buf)
			if err != nil {
				if cerr := d.expired(); cerr != nil {
					return cerr
				}
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break // next send
				}
				if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
					continue // an ICMP error reported on the socket (Windows does)
				}
				return fmt.Errorf("nat: reading: %w", err)
			}
			for _, q := range reqs {
				if q.res.outcome != notRun {
					continue
				}
				resp, err := parseResponse(d.buf[:n], q.txid)
				if err != nil {
					continue
				}
				q.res = result{outcome: answered, resp: resp, from: addrPort(addr)}
				if !resp.success {
					q.res.outcome = refused
				}
				break
			}
			if reqs[0].res.outcome != notRun {
				return nil
			}
		}
	}
	return nil
}

// expired returns ctx's error, or context.DeadlineExceeded once ctx's
// deadline has passed even if ctx has not noticed yet: a read deadline at
// ctx's deadline can fire first.
func (d *discovery) expired() error {
	if err := d.ctx.Err(); err != nil {
		return err
	}
	if dl, ok := d.ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// addrPort converts the source of a datagram.
func addrPort(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	if u, ok := a.(*net.UDPAddr); ok {
		ap = u.AddrPort()
	} else if a != nil {
		ap, _ = netip.ParseAddrPort(a.String())
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// localAddr returns conn's local address, with the source address the
// kernel would use towards server in place of an unspecified one.
func localAddr(conn net.PacketConn, server netip.AddrPort) netip.AddrPort {
	la := addrPort(conn.LocalAddr())
	if !la.Addr().IsUnspecified() && la.Addr().IsValid() {
		return la
	}
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(server))
	if err != nil {
		return la
	}
	defer c.Close()
	src := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
	return netip.AddrPortFrom(src, la.Port())
}
