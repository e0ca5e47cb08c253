package nodeset

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeResolver answers from a table that a test changes over time, and
// records every host it was asked for. A host not in the table does not
// exist; a blocked host's lookup waits for its context.
type fakeResolver struct {
	mu      sync.Mutex
	answers map[string]answer
	blocked map[string]bool
	lookups []string
}

type answer struct {
	addrs []string
	err   error
}

func newFake() *fakeResolver {
	return &fakeResolver{answers: make(map[string]answer), blocked: make(map[string]bool)}
}

func (f *fakeResolver) LookupHost(ctx context.Context, host string) ([]string, error) {
	f.mu.Lock()
	f.lookups = append(f.lookups, host)
	a, ok := f.answers[host]
	blocked := f.blocked[host]
	f.mu.Unlock()
	if blocked {
		<-ctx.Done()
		return nil, &net.DNSError{Err: ctx.Err().Error(), Name: host, IsTimeout: true}
	}
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return slices.Clone(a.addrs), a.err
}

func (f *fakeResolver) set(host string, addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[host] = answer{addrs: addrs}
}

func (f *fakeResolver) fail(host string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[host] = answer{err: err}
}

func (f *fakeResolver) block(host string, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blocked[host] = on
}

func (f *fakeResolver) asked() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.lookups)
}

func node(addr, name string) Node { return Node{Addr: addr, Name: name} }

func TestResolve(t *testing.T) {
	f := newFake()
	f.set("hops.test", "10.0.0.3", "10.0.0.1", "10.0.0.3", "10.0.0.2")
	f.set("dual.test", "2001:db8::2", "10.0.0.20", "::ffff:10.0.0.10", "10.0.0.20")
	f.set("v6.test", "2001:db8::2", "2001:db8::1", "2001:db8::2")
	f.set("one.test", "10.0.0.1")
	f.set("empty.test")
	f.set("junk.test", "10.0.0.1", "not-an-ip")
	for _, c := range []struct {
		name      string
		endpoints []string
		want      []Node
		errs      []string // substrings of the error, one per failing endpoint; nil for no error
		is        error    // what the error must match
	}{
		{name: "IP endpoints as written", endpoints: []string{"10.0.0.2:7000", "[2001:db8::1]:7001", "[::ffff:10.0.0.3]:7000", "10.0.0.4:07000"},
			want: []Node{node("10.0.0.2:7000", "10.0.0.2:7000"), node("[2001:db8::1]:7001", "[2001:db8::1]:7001"), node("10.0.0.3:7000", "[::ffff:10.0.0.3]:7000"), node("10.0.0.4:7000", "10.0.0.4:07000")}},
		{name: "name sorted and deduplicated", endpoints: []string{"hops.test:7000"},
			want: []Node{node("10.0.0.1:7000", "hops.test:7000"), node("10.0.0.2:7000", "hops.test:7000"), node("10.0.0.3:7000", "hops.test:7000")}},
		{name: "dual stack name uses IPv4", endpoints: []string{"dual.test:7000"},
			want: []Node{node("10.0.0.10:7000", "dual.test:7000"), node("10.0.0.20:7000", "dual.test:7000")}},
		{name: "IPv6-only name", endpoints: []string{"v6.test:7000"},
			want: []Node{node("[2001:db8::1]:7000", "v6.test:7000"), node("[2001:db8::2]:7000", "v6.test:7000")}},
		{name: "one address through two endpoints", endpoints: []string{"10.0.0.2:7000", "hops.test:7000", "one.test:7000", "hops.test:7001"},
			want: []Node{node("10.0.0.2:7000", "10.0.0.2:7000"), node("10.0.0.1:7000", "hops.test:7000"), node("10.0.0.3:7000", "hops.test:7000"),
				node("10.0.0.1:7001", "hops.test:7001"), node("10.0.0.2:7001", "hops.test:7001"), node("10.0.0.3:7001", "hops.test:7001")}},
		{name: "one name does not resolve", endpoints: []string{"gone.test:7000", "one.test:7000", "10.0.0.9:7000"},
			want: []Node{node("10.0.0.1:7000", "one.test:7000"), node("10.0.0.9:7000", "10.0.0.9:7000")},
			errs: []string{`nodeset: endpoint "gone.test:7000": look up gone.test: lookup gone.test: no such host`}},
		{name: "no address, junk answer", endpoints: []string{"empty.test:7000", "junk.test:7000", "one.test:7001"},
			want: []Node{node("10.0.0.1:7001", "one.test:7001")},
			errs: []string{`nodeset: endpoint "empty.test:7000": look up empty.test: no IP address`, `nodeset: endpoint "junk.test:7000": look up junk.test: no IP address: the resolver answered "not-an-ip"`},
			is:   ErrNoAddress},
		{name: "bad endpoints", endpoints: []string{"hops.test", "hops.test:0", "hops.test:x", ":7000", "hops.test:65536", "hops.test:+1", "10.0.0.1:7000"},
			want: []Node{node("10.0.0.1:7000", "10.0.0.1:7000")},
			errs: []string{`endpoint "hops.test": not host:port: missing port in address`, `endpoint "hops.test:0": not host:port: port "0"`, `endpoint "hops.test:x": not host:port: port "x"`,
				`endpoint ":7000": not host:port: no host`, `endpoint "hops.test:65536": not host:port: port "65536"`, `endpoint "hops.test:+1": not host:port: port "+1"`},
			is: ErrEndpoint},
		{name: "no endpoints", errs: []string{"Config.Endpoints is empty"}, is: ErrEndpoint},
	} {
		t.Run(c.name, func(t *testing.T) {
			nodes, err := Resolve(t.Context(), Config{Endpoints: c.endpoints, Resolver: f})
			if !reflect.DeepEqual(nodes, c.want) {
				t.Errorf("nodes\n got %v\nwant %v", nodes, c.want)
			}
			if c.errs == nil {
				if err != nil {
					t.Errorf("err = %v, want none", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("err = nil, want %q", c.errs)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(c.errs) {
				t.Errorf("err has %d lines, want %d:\n%v", len(lines), len(c.errs), err)
			}
			for _, want := range c.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("err = %v\nwant it to contain %q", err, want)
				}
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, c.is)
			}
		})
	}
	for _, h := range f.asked() {
		if net.ParseIP(h) != nil || strings.Contains(h, "::") {
			t.Errorf("looked up the IP address %q", h)
		}
	}
}

// TestResolveDNSError checks that the resolver's own error stays
// reachable with errors.As.
func TestResolveDNSError(t *testing.T) {
	f := newFake()
	_, err := Resolve(t.Context(), Config{Endpoints: []string{"gone.test:7000"}, Resolver: f})
	var de *net.DNSError
	if !errors.As(err, &de) || !de.IsNotFound || de.Name != "gone.test" {
		t.Errorf("err = %v (%T), want it to wrap the *net.DNSError of gone.test", err, err)
	}
}

// TestResolveStableOrder: the order of the answers does not matter.
func TestResolveStableOrder(t *testing.T) {
	f := newFake()
	cfg := Config{Endpoints: []string{"b.test:7000", "a.test:7000"}, Resolver: f}
	f.set("a.test", "10.0.0.5", "10.0.0.4")
	f.set("b.test", "10.0.0.2", "10.0.0.10", "10.0.0.1")
	first, err := Resolve(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.set("a.test", "10.0.0.4", "10.0.0.5", "10.0.0.4")
	f.set("b.test", "10.0.0.10", "10.0.0.1", "10.0.0.2")
	second, err := Resolve(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []Node{node("10.0.0.1:7000", "b.test:7000"), node("10.0.0.2:7000", "b.test:7000"), node("10.0.0.10:7000", "b.test:7000"),
		node("10.0.0.4:7000", "a.test:7000"), node("10.0.0.5:7000", "a.test:7000")}
	if !reflect.DeepEqual(first, want) || !reflect.DeepEqual(second, want) {
		t.Errorf("got\n%v\n%v\nwant %v", first, second, want)
	}
}

// TestResolveDefaultResolver uses net.DefaultResolver on localhost,
// which /etc/hosts answers.
func TestResolveDefaultResolver(t *testing.T) {
	if _, err := net.DefaultResolver.LookupHost(t.Context(), "localhost"); err != nil {
		t.Skipf("localhost does not resolve here: %v", err)
	}
	nodes, err := Resolve(t.Context(), Config{Endpoints: []string{"localhost:7000"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) == 0 || nodes[0].Name != "localhost:7000" {
		t.Fatalf("nodes = %v, want loopback addresses named localhost:7000", nodes)
	}
	v4 := strings.HasPrefix(nodes[0].Addr, "127.")
	for _, n := range nodes {
		host, _, _ := net.SplitHostPort(n.Addr)
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() || (ip.To4() != nil) != v4 {
			t.Errorf("node %v: not a loopback address of one family", n)
		}
	}
}

// logBuffer is an io.Writer for a slog handler that Watch writes to
// while the test reads it.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// count returns how many lines contain s.
func (l *logBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// change is one call of onChange.
type change struct{ added, removed []Node }

// watcher runs Watch in a goroutine and records its calls.
type watcher struct {
	mu      sync.Mutex
	changes []change
	log     logBuffer
	cancel  context.CancelFunc
	done    chan struct{}
}

func startWatch(t *testing.T, cfg Config) *watcher {
	t.Helper()
	w := &watcher{done: make(chan struct{})}
	cfg.Log = slog.New(slog.NewTextHandler(&w.log, nil))
	ctx, cancel := context.WithCancel(t.Context())
	w.cancel = cancel
	go func() {
		defer close(w.done)
		Watch(ctx, cfg, func(added, removed []Node) {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.changes = append(w.changes, change{slices.Clone(added), slices.Clone(removed)})
		})
	}()
	return w
}

// take returns the calls since the last take.
func (w *watcher) take() []change {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.changes
	w.changes = nil
	return c
}

// expect checks that exactly the calls want happened since the last
// take. Within a synctest bubble, call it after synctest.Wait.
func (w *watcher) expect(t *testing.T, step string, want ...change) {
	t.Helper()
	got := w.take()
	if len(got) != len(want) {
		t.Errorf("%s: %d calls of onChange, want %d: %v", step, len(got), len(want), got)
		return
	}
	for i := range want {
		if !sameNodes(got[i].added, want[i].added) || !sameNodes(got[i].removed, want[i].removed) {
			t.Errorf("%s: onChange(added %v, removed %v), want (added %v, removed %v)", step, got[i].added, got[i].removed, want[i].added, want[i].removed)
		}
	}
}

func sameNodes(a, b []Node) bool { return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b)) }

func (w *watcher) stop(t *testing.T) {
	t.Helper()
	w.cancel()
	synctest.Wait()
	select {
	case <-w.done:
	default:
		t.Fatal("Watch did not return when its context ended")
	}
}

// TestWatchDNSChanges follows a name whose addresses grow, shrink, stop
// resolving and come back, next to an IP endpoint.
func TestWatchDNSChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.set("hops.test", "10.0.0.1")
		const every = time.Minute
		w := startWatch(t, Config{Endpoints: []string{"hops.test:7000", "10.0.0.9:7000"}, Every: every, Resolver: f})
		tick := func() {
			time.Sleep(every)
			synctest.Wait()
		}
		a, b, c := node("10.0.0.1:7000", "hops.test:7000"), node("10.0.0.2:7000", "hops.test:7000"), node("10.0.0.3:7000", "hops.test:7000")
		ip := node("10.0.0.9:7000", "10.0.0.9:7000")

		synctest.Wait()
		w.expect(t, "first round", change{added: []Node{a, ip}})

		time.Sleep(every - time.Second)
		synctest.Wait()
		f.set("hops.test", "10.0.0.2", "10.0.0.1")
		w.expect(t, "before the interval")
		time.Sleep(time.Second)
		synctest.Wait()
		w.expect(t, "more addresses", change{added: []Node{b}})

		tick()
		w.expect(t, "no change")

		f.set("hops.test", "10.0.0.2")
		tick()
		w.expect(t, "fewer addresses", change{removed: []Node{a}})

		// An outage keeps the nodes; one log line per change of error.
		f.fail("hops.test", &net.DNSError{Err: "server misbehaving", Name: "hops.test", IsTemporary: true})
		tick()
		tick()
		w.expect(t, "outage")
		if n := w.log.count("lookup failed"); n != 1 {
			t.Errorf("%d lines about the failed lookup after two rounds with the same error, want 1:\n%s", n, w.log.String())
		}
		f.set("hops.test") // no address at all: a failure too
		tick()
		tick()
		w.expect(t, "empty answer")
		if n := w.log.count("lookup failed"); n != 2 {
			t.Errorf("%d lines about failed lookups after the error changed, want 2:\n%s", n, w.log.String())
		}
		if !strings.Contains(w.log.String(), "kept=1") {
			t.Errorf("the log does not say that the node was kept:\n%s", w.log.String())
		}

		f.set("hops.test", "10.0.0.3")
		tick()
		w.expect(t, "back with another address", change{added: []Node{c}, removed: []Node{b}})
		if n := w.log.count("lookup works again"); n != 1 {
			t.Errorf("%d lines about the lookup working again, want 1:\n%s", n, w.log.String())
		}

		w.stop(t)
		for _, h := range f.asked() {
			if h != "hops.test" {
				t.Errorf("looked up %q", h)
			}
		}
		if n := len(f.asked()); n != 9 {
			t.Errorf("%d lookups, want 9 (one per round)", n)
		}
	})
}

// TestWatchOneEndpointFails: a name that does not resolve at first
// leaves the others' nodes, and its own come when it resolves.
func TestWatchOneEndpointFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.set("b.test", "10.0.0.2")
		w := startWatch(t, Config{Endpoints: []string{"a.test:7000", "b.test:7000"}, Resolver: f})
		synctest.Wait()
		w.expect(t, "first round", change{added: []Node{node("10.0.0.2:7000", "b.test:7000")}})
		if !strings.Contains(w.log.String(), `msg="cannot resolve the server: no node to attach to through it yet; retrying" endpoint=a.test:7000 error="nodeset: endpoint \"a.test:7000\": look up a.test: lookup a.test: no such host"`) {
			t.Errorf("log does not show a.test failing:\n%s", w.log.String())
		}
		f.set("a.test", "10.0.0.1")
		// A name with no node yet is retried within seconds (backoff
		// from 1 s), not after Every (the default minute).
		time.Sleep(2 * time.Second)
		synctest.Wait()
		w.expect(t, "a.test resolves", change{added: []Node{node("10.0.0.1:7000", "a.test:7000")}})
		w.stop(t)
	})
}

// TestWatchNothingFirst: the first call comes even when nothing resolved.
func TestWatchNothingFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		w := startWatch(t, Config{Endpoints: []string{"a.test:7000"}, Every: time.Second, Resolver: f})
		synctest.Wait()
		w.expect(t, "first round", change{})
		time.Sleep(time.Second)
		synctest.Wait()
		w.expect(t, "still nothing")
		f.set("a.test", "10.0.0.1")
		time.Sleep(time.Second)
		synctest.Wait()
		w.expect(t, "resolves", change{added: []Node{node("10.0.0.1:7000", "a.test:7000")}})
		w.stop(t)
	})
}

// TestWatchAddressMoves: an address that another endpoint also reaches
// stays one node, with the value it was added with.
func TestWatchAddressMoves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.set("a.test", "10.0.0.1")
		f.set("b.test", "10.0.0.2")
		w := startWatch(t, Config{Endpoints: []string{"a.test:7000", "b.test:7000"}, Every: time.Second, Resolver: f})
		synctest.Wait()
		a, b := node("10.0.0.1:7000", "a.test:7000"), node("10.0.0.2:7000", "b.test:7000")
		w.expect(t, "first round", change{added: []Node{a, b}})
		f.set("a.test", "10.0.0.2") // now first through a.test too
		time.Sleep(time.Second)
		synctest.Wait()
		w.expect(t, "a.test moves to b's address", change{removed: []Node{a}})
		f.set("b.test", "10.0.0.3")
		time.Sleep(time.Second)
		synctest.Wait()
		w.expect(t, "b.test moves on", change{added: []Node{node("10.0.0.3:7000", "b.test:7000")}})
		f.set("a.test", "10.0.0.1")
		time.Sleep(time.Second)
		synctest.Wait()
		// 10.0.0.2 was added as b.test's and is removed as that value.
		w.expect(t, "a.test back", change{added: []Node{a}, removed: []Node{b}})
		w.stop(t)
	})
}

// TestWatchHangingLookup: a lookup that never answers is cut off after
// Every, counts as failed, and does not delay the other endpoints past
// that round; ctx ends Watch even in the middle of it.
func TestWatchHangingLookup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.block("slow.test", true)
		const every = 10 * time.Second
		w := startWatch(t, Config{Endpoints: []string{"slow.test:7000", "10.0.0.9:7000"}, Every: every, Resolver: f})
		synctest.Wait()
		w.expect(t, "lookup hanging")
		time.Sleep(every)
		synctest.Wait()
		w.expect(t, "lookup cut off", change{added: []Node{node("10.0.0.9:7000", "10.0.0.9:7000")}})
		if n := w.log.count("cannot resolve the server"); n != 1 {
			t.Errorf("%d lines about the failed lookup, want 1:\n%s", n, w.log.String())
		}
		f.block("slow.test", false)
		f.set("slow.test", "10.0.0.1")
		time.Sleep(every)
		synctest.Wait()
		w.expect(t, "lookup answers", change{added: []Node{node("10.0.0.1:7000", "slow.test:7000")}})

		f.block("slow.test", true)
		time.Sleep(every)
		synctest.Wait() // Watch is waiting for the lookup
		w.stop(t)
		w.expect(t, "stopped mid-round")
	})
}

func TestWatchNegativeEvery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.set("a.test", "10.0.0.1")
		w := startWatch(t, Config{Endpoints: []string{"a.test:7000"}, Every: -time.Second, Resolver: f})
		synctest.Wait()
		w.expect(t, "first round", change{added: []Node{node("10.0.0.1:7000", "a.test:7000")}})
		if !strings.Contains(w.log.String(), "level=ERROR") || !strings.Contains(w.log.String(), "Config.Every is negative") {
			t.Errorf("no error logged for a negative Every:\n%s", w.log.String())
		}
		f.set("a.test", "10.0.0.2")
		time.Sleep(DefaultEvery - time.Second)
		synctest.Wait()
		w.expect(t, "before the default interval")
		time.Sleep(time.Second)
		synctest.Wait()
		w.expect(t, "at the default interval", change{added: []Node{node("10.0.0.2:7000", "a.test:7000")}, removed: []Node{node("10.0.0.1:7000", "a.test:7000")}})
		w.stop(t)
	})
}

func TestWatchNoEndpoints(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := startWatch(t, Config{Resolver: newFake()})
		synctest.Wait()
		w.expect(t, "first call", change{})
		if !strings.Contains(w.log.String(), "Config.Endpoints is empty") {
			t.Errorf("no error logged for no endpoints:\n%s", w.log.String())
		}
		w.stop(t)
	})
}

// TestWatchStopsRealTime runs Watch on the real clock and checks that it
// returns when its context ends and leaves no goroutine behind.
func TestWatchStopsRealTime(t *testing.T) {
	f := newFake()
	f.set("a.test", "10.0.0.1")
	f.block("slow.test", true)
	ctx, cancel := context.WithCancel(t.Context())
	called := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Watch(ctx, Config{Endpoints: []string{"a.test:7000", "10.0.0.2:7000"}, Every: time.Hour, Resolver: f}, func(added, removed []Node) {
			select {
			case called <- struct{}{}:
			default:
			}
		})
	}()
	select {
	case <-called:
	case <-time.After(30 * time.Second):
		t.Fatal("no call of onChange within 30s")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Watch did not return within 30s of its context ending")
	}
	goleak.VerifyNone(t)

	// The same while a lookup hangs.
	ctx, cancel = context.WithCancel(t.Context())
	done = make(chan struct{})
	go func() {
		defer close(done)
		Watch(ctx, Config{Endpoints: []string{"slow.test:7000"}, Every: time.Hour, Resolver: f}, func(added, removed []Node) {
			t.Errorf("onChange(%v, %v) called for a round cut short", added, removed)
		})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !slices.Contains(f.asked(), "slow.test") {
		if time.Now().After(deadline) {
			t.Fatal("slow.test not looked up within 30s")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Watch did not return within 30s of its context ending")
	}
	goleak.VerifyNone(t)
}

func TestNodeString(t *testing.T) {
	for _, c := range []struct {
		n    Node
		want string
	}{
		{node("10.0.0.1:7000", "10.0.0.1:7000"), "10.0.0.1:7000"},
		{node("10.0.0.1:7000", "hops.test:7000"), "10.0.0.1:7000 (hops.test:7000)"},
	} {
		if got := c.n.String(); got != c.want {
			t.Errorf("%#v.String() = %q, want %q", c.n, got, c.want)
		}
	}
}
