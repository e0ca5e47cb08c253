package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Sentinel errors.
var (
	// ErrClosed is returned by methods of a lab, or of its hosts, after
	// Lab.Close.
	ErrClosed = errors.New("netlab: lab closed")
)

const (
	// stem starts the name of every namespace a lab creates.
	stem = "hl"

	// routeProto tags the root-namespace blackhole routes of all labs
	// ("h" = 0x68). The metric tells the creator: pid<<10 | seq.
	routeProto = "104"

	// netnsDir is where iproute2 keeps named namespaces.
	netnsDir = "/run/netns"

	// RequireEnv is the environment variable that turns New's skip into a
	// failure when set to "1".
	RequireEnv = "HOP_REQUIRE_NETLAB"

	// cmdTimeout bounds every ip/nft command the lab runs for itself.
	cmdTimeout = 20 * time.Second

	// linkUpTimeout bounds the wait for a new veth to be operationally up.
	linkUpTimeout = 10 * time.Second
)

// labSeq numbers the labs of this process, for route metrics.
var labSeq atomic.Uint32

// nameRE is what a network or host name may look like.
var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// A Lab owns a set of namespaces and root-namespace blackhole routes, and the
// processes started in them. Make one with New.
type Lab struct {
	tb     testing.TB
	prefix string // "hl<pid>x<hex>-"
	metric uint32 // of this lab's blackhole routes

	wg sync.WaitGroup // one per started process

	mu     sync.Mutex
	closed bool
	names  map[string]bool       // network and host names in use
	nss    []string              // created namespaces, in creation order
	routes []netip.Prefix        // blackhole routes added in root
	procs  map[*Proc]struct{}    // processes started and not yet reaped
	nets   map[netip.Prefix]bool // CIDRs with a blackhole route

	closeOnce sync.Once
	closeErr  error
}

// New returns an empty lab and registers its Close with tb.Cleanup. It first
// removes leftovers of crashed earlier runs (see Sweep).
//
// New skips the test when not running as root, when ip or nft is missing, or
// when a namespace cannot be created. With HOP_REQUIRE_NETLAB=1 in the
// environment it fails the test instead, so that CI cannot skip silently.
func New(tb testing.TB) *Lab {
	tb.Helper()
	requireEnv(tb, missingRequirements())

	if err := Sweep(); err != nil {
		tb.Logf("netlab: sweeping leftovers of earlier runs: %v", err)
	}
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		tb.Fatalf("netlab: %v", err)
	}
	pid := os.Getpid()
	l := &Lab{
		tb:     tb,
		prefix: fmt.Sprintf("%s%dx%s-", stem, pid, hex.EncodeToString(rnd[:])),
		metric: uint32(pid)<<10 | labSeq.Add(1)&0x3ff,
		names:  make(map[string]bool),
		procs:  make(map[*Proc]struct{}),
		nets:   make(map[netip.Prefix]bool),
	}
	tb.Cleanup(func() {
		if err := l.Close(); err != nil {
			tb.Errorf("netlab: cleanup: %v", err)
		}
	})
	return l
}

// requireEnv skips or, with HOP_REQUIRE_NETLAB=1, fails tb when something is
// missing.
func requireEnv(tb testing.TB, missing []string) {
	tb.Helper()
	if len(missing) == 0 {
		return
	}
	msg := "netlab: needs root and nftables (nft) and iproute2 (ip): " + strings.Join(missing, "; ")
	if os.Getenv(RequireEnv) == "1" {
		tb.Fatalf("%s (%s=1 forbids skipping)", msg, RequireEnv)
	}
	tb.Skip(msg)
}

// missingRequirements reports what keeps this machine from running a lab.
func missingRequirements() []string {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, fmt.Sprintf("not root (euid %d)", os.Geteuid()))
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, fmt.Sprintf("%s not found in PATH", tool))
		}
	}
	if len(missing) > 0 {
		return missing
	}
	// Probe: a namespace in which nft works.
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	probe := fmt.Sprintf("%s%dx%s-probe", stem, os.Getpid(), hex.EncodeToString(rnd[:]))
	if _, err := run(nil, "ip", "netns", "add", probe); err != nil {
		return append(missing, fmt.Sprintf("ip netns add failed: %v", err))
	}
	defer run(nil, "ip", "netns", "del", probe)
	if _, err := run(nil, "ip", "netns", "exec", probe, "nft", "list", "ruleset"); err != nil {
		missing = append(missing, fmt.Sprintf("nft does not work in a namespace: %v", err))
	}
	return missing
}

// Prefix returns the prefix of the names of all namespaces of this lab.
func (l *Lab) Prefix() string { return l.prefix }

// Namespaces returns the names of the namespaces the lab has created and not
// yet deleted.
func (l *Lab) Namespaces() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.nss...)
}

// Close kills the processes the lab started (by PID) and waits for them,
// deletes the lab's namespaces and removes its root-namespace routes. It is
// safe to call more than once; later calls return the first call's result.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.close() })
	return l.closeErr
}

func (l *Lab) close() error {
	l.mu.Lock()
	l.closed = true
	procs := make([]*Proc, 0, len(l.procs))
	for p := range l.procs {
		procs = append(procs, p)
	}
	nss, routes := l.nss, l.routes
	l.mu.Unlock()

	var errs []error
	for _, p := range procs {
		if err := p.Cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, fmt.Errorf("netlab: killing pid %d: %w", p.Cmd.Process.Pid, err))
		}
	}
	l.wg.Wait()

	for i := len(nss) - 1; i >= 0; i-- {
		ns := nss[i]
		if out, err := run(nil, "ip", "netns", "pids", ns); err == nil && len(bytes.TrimSpace(out)) > 0 {
			errs = append(errs, fmt.Errorf("netlab: namespace %s still has processes the lab did not start: %s",
				ns, strings.Join(strings.Fields(string(out)), " ")))
		}
		if _, err := run(nil, "ip", "netns", "del", ns); err != nil && nsExists(ns) {
			errs = append(errs, err)
		}
	}
	for _, p := range routes {
		if err := delRoute(p, l.metric); err != nil {
			errs = append(errs, err)
		}
	}

	l.mu.Lock()
	l.nss, l.routes = nil, nil
	l.mu.Unlock()
	return errors.Join(errs...)
}

// fatal fails the test on err.
func (l *Lab) fatal(err error) {
	if err != nil {
		l.tb.Helper()
		l.tb.Fatal(err)
	}
}

// claim reserves a name for a new network or host and returns its namespace
// name.
func (l *Lab) claim(name string) (string, error) {
	if !nameRE.MatchString(name) {
		return "", fmt.Errorf("netlab: bad name %q: want %s", name, nameRE)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return "", ErrClosed
	}
	if l.names[name] {
		return "", fmt.Errorf("netlab: name %q already used in this lab", name)
	}
	l.names[name] = true
	return l.prefix + name, nil
}

// addNS creates a namespace with lo up and records it for Close.
func (l *Lab) addNS(ns string) error {
	if _, err := run(nil, "ip", "netns", "add", ns); err != nil {
		return err
	}
	l.mu.Lock()
	l.nss = append(l.nss, ns)
	l.mu.Unlock()
	_, err := run(nil, "ip", "-n", ns, "link", "set", "lo", "up")
	return err
}

// blackhole adds the root-namespace blackhole route for p once per lab.
func (l *Lab) blackhole(p netip.Prefix) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if l.nets[p] {
		return nil
	}
	if _, err := run(nil, "ip", "route", "add", "blackhole", p.String(),
		"proto", routeProto, "metric", fmt.Sprint(l.metric)); err != nil {
		return err
	}
	l.nets[p] = true
	l.routes = append(l.routes, p)
	return nil
}

func delRoute(p netip.Prefix, metric uint32) error {
	_, err := run(nil, "ip", "route", "del", "blackhole", p.String(),
		"proto", routeProto, "metric", fmt.Sprint(metric))
	if err != nil && strings.Contains(err.Error(), "No such process") {
		return nil // already gone
	}
	return err
}

// checkBlackholed fails unless the root namespace blackholes a.
//
// A blackhole route makes route lookups fail with EINVAL, which is the
// only outcome accepted here; a successful lookup means the root namespace
// has a route that would carry a to a real interface.
func checkBlackholed(a netip.Addr) error {
	out, err := run(nil, "ip", "route", "get", a.String())
	if err == nil {
		return fmt.Errorf("netlab: the root namespace routes %s (%s); pick a CIDR this machine does not use",
			a, strings.TrimSpace(string(out)))
	}
	if !strings.Contains(err.Error(), "Invalid argument") {
		return fmt.Errorf("netlab: checking the root namespace blackholes %s: %w", a, err)
	}
	return nil
}

func nsExists(ns string) bool {
	_, err := os.Stat(netnsDir + "/" + ns)
	return err == nil
}

// run runs a short-lived control command of the lab, with stdin if not nil,
// and returns its combined output. The error includes the output.
func run(stdin []byte, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C") // error texts are matched
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("netlab: %s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}
