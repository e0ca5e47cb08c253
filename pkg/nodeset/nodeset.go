// Package nodeset finds the hops nodes a hopc attaches to. The config
// names endpoints, host:port each (config.ClientConfig.ServerEndpoints);
// an endpoint whose host is an IP address is one node, and one whose host
// is a name is every address the name resolves to. Resolve expands the
// endpoints once; Watch keeps expanding them, so that nodes added to or
// removed from a name's DNS records are found, and reports the changes.
//
// A name with both IPv4 and IPv6 addresses usually stands for the same
// machines twice (an A and an AAAA record each), and attaching to both
// addresses of one hops would register every proxy there twice. So a
// name's nodes are its IPv4 addresses, or its IPv6 addresses when it has
// no IPv4 one. An endpoint written as an IP address is used as written.
//
// A lookup that fails never removes nodes in Watch: a DNS outage keeps
// the nodes found before it.
package nodeset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hopproxy/hop/pkg/backoff"
)

// DefaultEvery is how often Watch resolves the endpoints again when
// Config.Every is zero.
const DefaultEvery = time.Minute

// Sentinel errors. Match them with errors.Is; the errors of Resolve wrap
// them (or the Resolver's own error) once per endpoint, joined.
var (
	// ErrEndpoint: an endpoint is not host:port with a port 1-65535, or
	// Config.Endpoints is empty. Config validation (pkg/config) rejects
	// such endpoints first, so this is a program error.
	ErrEndpoint = errors.New("not host:port")
	// ErrNoAddress: a name's lookup succeeded but gave no address to
	// dial (none at all, or something that is not an IP address).
	ErrNoAddress = errors.New("no IP address")
)

// Config says which endpoints to expand and how. The zero value of each
// field but Endpoints is its default.
type Config struct {
	// Endpoints are host:port each, as ClientConfig.ServerEndpoints
	// returns them. At least one.
	Endpoints []string
	// Every is the interval at which Watch resolves again. Zero means
	// DefaultEvery; it must not be negative. It also bounds each lookup
	// of Watch, so that a resolver that hangs delays no more than one
	// round.
	Every time.Duration
	// Resolver looks names up. nil means net.DefaultResolver.
	Resolver Resolver
	// Log receives one line per change: a lookup failing (once per
	// change of its error), working again, nodes added and removed. nil
	// discards them.
	Log *slog.Logger
}

// Resolver looks up the addresses of a host name; *net.Resolver is one.
// Tests substitute a fake.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// Node is one hops to attach to: Addr is IP:port (what to dial), Name
// the endpoint it came from (host:port as configured), for logs and as
// the TLS server name.
type Node struct{ Addr, Name string }

// String returns Addr, followed by Name in parentheses when they differ.
func (n Node) String() string {
	if n.Addr == n.Name {
		return n.Addr
	}
	return n.Addr + " (" + n.Name + ")"
}

// Resolve expands every endpoint: an IP:port is itself; a name is every
// address it resolves to (sorted, deduplicated). A name that does not
// resolve is an error for that endpoint only (returned joined); the nodes
// of the others are returned.
//
// Nodes are in the order of the endpoints, and of the sorted addresses
// within one. An address reached through two endpoints is one node, named
// after the first of them.
func Resolve(ctx context.Context, cfg Config) ([]Node, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("nodeset: %w: Config.Endpoints is empty; list at least one hops as host:port", ErrEndpoint)
	}
	results := resolveAll(ctx, cfg.resolver(), cfg.Endpoints, 0)
	var errs []error
	sets := make([][]Node, len(results))
	for i, r := range results {
		sets[i] = r.nodes
		if r.err != nil {
			errs = append(errs, r.err)
		}
	}
	return merge(sets, nil), errors.Join(errs...)
}

// Watch resolves at once and every cfg.Every until ctx ends, and calls
// onChange (from Watch's goroutine) with the nodes added and removed
// since the last call (the first call has every node as added). A
// failed lookup keeps the nodes it had for that endpoint (a DNS outage
// never drops nodes) and is logged once per change of error. While an
// endpoint has no node at all, the next round comes after a backoff from
// 1 s up to cfg.Every instead.
//
// The first call comes after the first round of lookups even when it
// found no node (both slices empty), so that the caller knows the round
// is done; later calls come only when something changed. A node is known
// by its Addr: a removed Node is the value that was added, even if the
// address is now reached through another endpoint. Watch returns when ctx
// ends, without calling onChange for a round that ctx cut short, and
// leaves no goroutine behind.
func Watch(ctx context.Context, cfg Config, onChange func(added, removed []Node)) {
	log := cfg.logger()
	every := cfg.Every
	switch {
	case every == 0:
		every = DefaultEvery
	case every < 0:
		log.Error("nodeset: Config.Every is negative; resolving every "+DefaultEvery.String()+" instead", "every", cfg.Every)
		every = DefaultEvery
	}
	if len(cfg.Endpoints) == 0 {
		log.Error("nodeset: Config.Endpoints is empty: no hops to attach to")
		onChange(nil, nil)
		<-ctx.Done()
		return
	}

	type endpointState struct {
		nodes  []Node // from the last lookup that worked
		errMsg string // text of the error of the last lookup; "" when it worked
	}
	states := make([]endpointState, len(cfg.Endpoints))
	var current []Node
	first := true
	// An endpoint with no node at all (a name that never resolved yet) is
	// looked up again soon, with backoff up to every, not after a whole
	// interval: hopc at boot before DNS works, or a typo being fixed.
	retry := backoff.Backoff{Min: time.Second, Max: every}
	timer := time.NewTimer(every)
	defer timer.Stop()
	for {
		results := resolveAll(ctx, cfg.resolver(), cfg.Endpoints, every)
		if ctx.Err() != nil {
			return
		}
		sets := make([][]Node, len(results))
		for i, r := range results {
			st, ep := &states[i], cfg.Endpoints[i]
			switch {
			case r.err != nil && r.err.Error() != st.errMsg && len(st.nodes) == 0:
				st.errMsg = r.err.Error()
				log.Warn("cannot resolve the server: no node to attach to through it yet; retrying", "endpoint", ep, "error", r.err)
			case r.err != nil && r.err.Error() != st.errMsg:
				st.errMsg = r.err.Error()
				log.Warn("nodeset: lookup failed; keeping the nodes it had", "endpoint", ep, "kept", len(st.nodes), "err", r.err)
			case r.err == nil && st.errMsg != "":
				st.errMsg = ""
				log.Info("nodeset: lookup works again", "endpoint", ep, "nodes", len(r.nodes))
			}
			if r.err == nil {
				st.nodes = r.nodes
			}
			sets[i] = st.nodes
		}
		next := merge(sets, current)
		added, removed := diff(current, next)
		if len(added) > 0 || len(removed) > 0 {
			log.Info("nodeset: nodes changed", "added", addrs(added), "removed", addrs(removed), "nodes", len(next))
		}
		if first || len(added) > 0 || len(removed) > 0 {
			first = false
			onChange(added, removed)
		}
		current = next

		wait := every
		for _, st := range states {
			if len(st.nodes) == 0 {
				wait = retry.Next()
				break
			}
		}
		if wait == every {
			retry.Reset()
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
	}
}

func (c Config) resolver() Resolver {
	if c.Resolver == nil {
		return net.DefaultResolver
	}
	return c.Resolver
}

func (c Config) logger() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}

// result is what one endpoint expanded to: nodes, or an error.
type result struct {
	nodes []Node
	err   error
}

// resolveAll expands the endpoints concurrently, each lookup bounded by
// timeout (0: by ctx only), and returns their results in order once all
// are done.
func resolveAll(ctx context.Context, r Resolver, endpoints []string, timeout time.Duration) []result {
	results := make([]result, len(endpoints))
	var wg sync.WaitGroup
	for i, ep := range endpoints {
		wg.Go(func() {
			lctx := ctx
			if timeout > 0 {
				var cancel context.CancelFunc
				lctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			nodes, err := resolveEndpoint(lctx, r, ep)
			results[i] = result{nodes, err}
		})
	}
	wg.Wait()
	return results
}

// resolveEndpoint expands one endpoint.
func resolveEndpoint(ctx context.Context, r Resolver, ep string) ([]Node, error) {
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		why := err.Error()
		if ae, ok := err.(*net.AddrError); ok {
			why = ae.Err
		}
		return nil, fmt.Errorf("nodeset: endpoint %q: %w: %s", ep, ErrEndpoint, why)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return nil, fmt.Errorf("nodeset: endpoint %q: %w: port %q is not a number 1-65535", ep, ErrEndpoint, port)
	}
	port = strconv.FormatUint(n, 10)
	if host == "" {
		return nil, fmt.Errorf("nodeset: endpoint %q: %w: no host", ep, ErrEndpoint)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return []Node{{Addr: net.JoinHostPort(ip.Unmap().String(), port), Name: ep}}, nil
	}
	answers, err := r.LookupHost(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("nodeset: endpoint %q: look up %s: %w", ep, host, err)
	}
	if len(answers) == 0 {
		return nil, fmt.Errorf("nodeset: endpoint %q: look up %s: %w", ep, host, ErrNoAddress)
	}
	var v4, v6 []netip.Addr
	for _, a := range answers {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			return nil, fmt.Errorf("nodeset: endpoint %q: look up %s: %w: the resolver answered %q", ep, host, ErrNoAddress, a)
		}
		if ip = ip.Unmap(); ip.Is4() {
			v4 = append(v4, ip)
		} else {
			v6 = append(v6, ip)
		}
	}
	ips := v4
	if len(ips) == 0 {
		ips = v6
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	ips = slices.Compact(ips)
	nodes := make([]Node, len(ips))
	for i, ip := range ips {
		nodes[i] = Node{Addr: net.JoinHostPort(ip.String(), port), Name: ep}
	}
	return nodes, nil
}

// merge concatenates the nodes of each endpoint, keeping the first node
// of each Addr. A node whose Addr is in prev is prev's value, so that a
// node keeps the Name it was reported with.
func merge(sets [][]Node, prev []Node) []Node {
	known := make(map[string]Node, len(prev))
	for _, n := range prev {
		known[n.Addr] = n
	}
	seen := make(map[string]bool)
	var out []Node
	for _, set := range sets {
		for _, n := range set {
			if seen[n.Addr] {
				continue
			}
			seen[n.Addr] = true
			if k, ok := known[n.Addr]; ok {
				n = k
			}
			out = append(out, n)
		}
	}
	return out
}

// diff returns the nodes of next whose Addr is not in prev, and those of
// prev whose Addr is not in next, each in its list's order.
func diff(prev, next []Node) (added, removed []Node) {
	in := func(list []Node, addr string) bool {
		return slices.ContainsFunc(list, func(n Node) bool { return n.Addr == addr })
	}
	for _, n := range next {
		if !in(prev, n.Addr) {
			added = append(added, n)
		}
	}
	for _, n := range prev {
		if !in(next, n.Addr) {
			removed = append(removed, n)
		}
	}
	return added, removed
}

// addrs lists the Addr of each node, for logs.
func addrs(nodes []Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.Addr
	}
	return out
}
