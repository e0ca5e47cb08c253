package faultrelay

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// quiet is how long a test waits to be satisfied that no data arrives.
const quiet = 300 * time.Millisecond

// target is a loopback listener standing in for hops.
type target struct {
	t  testing.TB
	ln *net.TCPListener
}

func newTarget(t testing.TB) *target {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &target{t: t, ln: ln.(*net.TCPListener)}
}

func (tg *target) addr() string { return tg.ln.Addr().String() }

// accept returns the server side of the next relayed connection.
func (tg *target) accept() *net.TCPConn {
	tg.t.Helper()
	tg.ln.SetDeadline(time.Now().Add(5 * time.Second))
	c, err := tg.ln.AcceptTCP()
	if err != nil {
		tg.t.Fatalf("accept at target: %v", err)
	}
	tg.t.Cleanup(func() { c.Close() })
	return c
}

// startEcho starts a loopback echo server that propagates half-close.
func startEcho(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				if _, err := io.Copy(c, c); err == nil {
					c.(*net.TCPConn).CloseWrite()
				}
				// Wait for the peer to close before closing, so a
				// relay that finished cleanly sees FIN, not RST.
				io.Copy(io.Discard, c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func startRelay(t testing.TB, targetAddr string) *Relay {
	t.Helper()
	r, err := Start("127.0.0.1:0", targetAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

func dial(t testing.TB, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// pair dials through r to tg and returns both ends.
func pair(t testing.TB, r *Relay, tg *target) (client, server *net.TCPConn) {
	t.Helper()
	client = dial(t, r.Addr())
	return client, tg.accept()
}

func random(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func write(t testing.TB, c net.Conn, b []byte) {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// readN reads exactly n bytes from c within timeout.
func readN(t testing.TB, c net.Conn, n int, timeout time.Duration) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(timeout))
	defer c.SetReadDeadline(time.Time{})
	b := make([]byte, n)
	if got, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read %d bytes: got %d: %v", n, got, err)
	}
	return b
}

// expectNothing asserts that nothing arrives on c for the quiet period and
// that c is still open.
func expectNothing(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(quiet))
	defer c.SetReadDeadline(time.Time{})
	var b [1]byte
	n, err := c.Read(b[:])
	if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("expected no data and an open connection, got %d bytes, err %v", n, err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestForwardHalfClose(t *testing.T) {
	r := startRelay(t, startEcho(t))
	c := dial(t, r.Addr())

	const n = 4 << 20
	data := random(t, n)
	var werr error
	var wg sync.WaitGroup
	wg.Go(func() {
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, werr = c.Write(data); werr == nil {
			werr = c.CloseWrite()
		}
	})
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c) // ends only if the echo's CloseWrite came through
	wg.Wait()
	if werr != nil {
		t.Fatalf("write: %v", werr)
	}
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("echo mismatch: got %d bytes, want %d", len(got), n)
	}
	c.Close()

	waitFor(t, "connection torn down", func() bool { return r.Stats().Active == 0 })
	want := Stats{
		Accepted:       1,
		ClientToServer: DirStats{Forwarded: n},
		ServerToClient: DirStats{Forwarded: n},
	}
	if s := r.Stats(); s != want {
		t.Fatalf("Stats = %+v, want %+v", s, want)
	}
}

// TestHalfCloseKeepsOtherDirection checks that after the client's
// CloseWrite the server sees EOF yet can still send.
func TestHalfCloseKeepsOtherDirection(t *testing.T) {
	tg := newTarget(t)
	r := startRelay(t, tg.addr())
	client, server := pair(t, r, tg)

	write(t, client, []byte("bye"))
	client.CloseWrite()
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := io.ReadAll(server); err != nil || string(got) != "bye" {
		t.Fatalf("server read %q, %v; want \"bye\", EOF", got, err)
	}
	write(t, server, []byte("still here"))
	if got := readN(t, client, 10, 5*time.Second); string(got) != "still here" {
		t.Fatalf("client read %q", got)
	}
	server.CloseWrite()
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := client.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("client read after server CloseWrite: %d, %v; want EOF", n, err)
	}
	waitFor(t, "connection torn down", func() bool { return r.Stats().Active == 0 })
}

func TestBlackHole(t *testing.T) {
	for _, dir := range []Direction{ClientToServer, ServerToClient, Both} {
		t.Run(dir.String(), func(t *testing.T) {
			tg := newTarget(t)
			r := startRelay(t, tg.addr())
			client, server := pair(t, r, tg)
			ends := []struct {
				dir      Direction
				from, to *net.TCPConn
				dropped  func(Stats) int64
			}{
				{ClientToServer, client, server, func(s Stats) int64 { return s.ClientToServer.Dropped }},
				{ServerToClient, server, client, func(s Stats) int64 { return s.ServerToClient.Dropped }},
			}

			r.BlackHole(dir)
			// More than all the socket buffers on the way hold: the relay
			// must keep draining for these writes to complete.
			lost := random(t, 8<<20)
			for _, e := range ends {
				if dir&e.dir == 0 {
					continue
				}
				write(t, e.from, lost)
				waitFor(t, "relay to drop "+e.dir.String(), func() bool {
					return e.dropped(r.Stats()) == int64(len(lost))
				})
			}
			for _, e := range ends {
				if dir&e.dir == 0 {
					// The other direction still works.
					write(t, e.from, []byte("open"))
					if got := readN(t, e.to, 4, 5*time.Second); string(got) != "open" {
						t.Fatalf("%v: got %q", e.dir, got)
					}
					continue
				}
				expectNothing(t, e.to)
			}

			r.Heal()
			for _, e := range ends {
				write(t, e.from, []byte("new"))
				// Were any of the dropped bytes delivered late, they
				// would come first.
				if got := readN(t, e.to, 3, 5*time.Second); string(got) != "new" {
					t.Fatalf("%v after Heal: got %q, want \"new\"", e.dir, got)
				}
			}
			if s := r.Stats(); s.Active != 1 {
				t.Fatalf("Active = %d, want 1", s.Active)
			}
		})
	}
}

func TestBlackHoleNewConnection(t *testing.T) {
	tg := newTarget(t)
	r := startRelay(t, tg.addr())
	r.BlackHole(ClientToServer)
	client, server := pair(t, r, tg)
	write(t, client, []byte("lost"))
	waitFor(t, "relay to drop", func() bool { return r.Stats().ClientToServer.Dropped == 4 })
	expectNothing(t, server)
}

func TestBlackHoleSwallowsEOF(t *testing.T) {
	tg := newTarget(t)
	r := startRelay(t, tg.addr())
	client, server := pair(t, r, tg)
	r.BlackHole(ClientToServer)
	client.CloseWrite()
	expectNothing(t, server)
	r.Heal()
	expectNothing(t, server) // dropped is dropped, EOF too
}

func TestStallThenHeal(t *testing.T) {
	for _, dir := range []Direction{ClientToServer, ServerToClient} {
		t.Run(dir.String(), func(t *testing.T) {
			tg := newTarget(t)
			r := startRelay(t, tg.addr())
			client, server := pair(t, r, tg)
			from, to := client, server
			if dir == ServerToClient {
				from, to = server, client
			}
			// Prove the Read the relay is blocked in gets interrupted.
			write(t, from, []byte("x"))
			readN(t, to, 1, 5*time.Second)

			r.Stall(dir)
			// The sender's buffers fill and its write blocks.
			data := random(t, 32<<20)
			from.SetWriteDeadline(time.Now().Add(time.Second))
			n, err := from.Write(data)
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("write while stalled: %d bytes, err %v; want a timeout", n, err)
			}
			t.Logf("%d bytes buffered while stalled", n)
			expectNothing(t, to)

			r.Heal()
			if got := readN(t, to, n, 10*time.Second); !bytes.Equal(got, data[:n]) {
				t.Fatal("data delivered after Heal differs")
			}
		})
	}
}

func TestStallReplacesBlackHole(t *testing.T) {
	tg := newTarget(t)
	r := startRelay(t, tg.addr())
	client, server := pair(t, r, tg)
	r.BlackHole(ClientToServer)
	r.Stall(ClientToServer)
	write(t, client, []byte("held"))
	expectNothing(t, server)
	if d := r.Stats().ClientToServer.Dropped; d != 0 {
		t.Fatalf("Dropped = %d while stalled", d)
	}
	r.Heal()
	if got := readN(t, server, 4, 5*time.Second); string(got) != "held" {
		t.Fatalf("got %q", got)
	}
}

func TestSetRate(t *testing.T) {
	const (
		rate = 128 << 10
		n    = 192 << 10 // 1.5 s at rate
	)
	for _, dir := range []Direction{ClientToServer, ServerToClient} {
		t.Run(dir.String(), func(t *testing.T) {
			tg := newTarget(t)
			r := startRelay(t, tg.addr())
			client, server := pair(t, r, tg)
			from, to := client, server
			if dir == ServerToClient {
				from, to = server, client
			}
			r.SetRate(dir, rate)
			data := random(t, n)
			start := time.Now()
			var wg sync.WaitGroup
			defer func() {
				from.Close() // unblocks the writer if the read failed
				wg.Wait()
			}()
			wg.Go(func() {
				from.SetWriteDeadline(time.Now().Add(20 * time.Second))
				from.Write(data)
			})
			got := readN(t, to, n, 20*time.Second)
			elapsed := time.Since(start)
			if !bytes.Equal(got, data) {
				t.Fatal("data mismatch")
			}
			want := time.Duration(float64(n) / rate * float64(time.Second))
			t.Logf("%d bytes at %d B/s took %v (ideal %v)", n, rate, elapsed, want)
			if elapsed < want*7/10 {
				t.Fatalf("transfer took %v, want at least %v", elapsed, want*7/10)
			}
		})
	}
}

// TestSetRateChange checks that lifting a rate limit wakes a reader
// waiting for tokens.
func TestSetRateChange(t *testing.T) {
	tg := newTarget(t)
	r := startRelay(t, tg.addr())
	client, server := pair(t, r, tg)
	r.SetRate(ClientToServer, 1)
	data := random(t, 64<<10) // would take 18 hours at 1 B/s
	write(t, client, data)
	readN(t, server, 1, 5*time.Second)
	// The reader now waits up to 1 s for the next byte's token.
	start := time.Now()
	r.SetRate(ClientToServer, 0)
	readN(t, server, len(data)-1, 5*time.Second)
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("rest arrived %v after lifting the limit", d)
	}
}

func TestSetDelay(t *testing.T) {
	const d = 150 * time.Millisecond
	r := startRelay(t, startEcho(t))
	c := dial(t, r.Addr())
	roundTrip := func() time.Duration {
		t.Helper()
		start := time.Now()
		write(t, c, []byte("ping"))
		if got := readN(t, c, 4, 10*time.Second); string(got) != "ping" {
			t.Fatalf("echo: %q", got)
		}
		return time.Since(start)
	}
	base := roundTrip()

	r.SetDelay(ClientToServer, d)
	if rtt := roundTrip(); rtt < d {
		t.Fatalf("round trip with %v one way: %v", d, rtt)
	}
	r.SetDelay(Both, d)
	if rtt := roundTrip(); rtt < 2*d {
		t.Fatalf("round trip with %v each way: %v", d, rtt)
	}

	// Throughput is not one chunk per delay: many pipelined messages
	// all arrive after about one round trip.
	const msgs = 40
	start := time.Now()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		for i := range msgs {
			c.Write([]byte{byte(i)})
			time.Sleep(time.Millisecond) // separate chunks
		}
	})
	got := readN(t, c, msgs, 10*time.Second)
	elapsed := time.Since(start)
	for i, b := range got {
		if b != byte(i) {
			t.Fatalf("reordered: got %v", got)
		}
	}
	t.Logf("base rtt %v; %d messages with %v each way took %v", base, msgs, d, elapsed)
	if elapsed < 2*d || elapsed > msgs*d/2 {
		t.Fatalf("%d pipelined messages took %v", msgs, elapsed)
	}

	r.Heal()
	if rtt := roundTrip(); rtt >= d {
		t.Fatalf("round trip after Heal: %v", rtt)
	}
}

func TestResetAll(t *testing.T) {
	tg := newTarget(t)
	r := startRelay(t, tg.addr())
	client, server := pair(t, r, tg)
	write(t, client, []byte("hi"))
	readN(t, server, 2, 5*time.Second)

	r.ResetAll()
	if a := r.Stats().Active; a != 0 {
		t.Fatalf("Active = %d after ResetAll", a)
	}
	for name, c := range map[string]net.Conn{"client": client, "server": server} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("%s read after ResetAll: %v, want ECONNRESET", name, err)
		}
	}

	// New connections still work.
	client, server = pair(t, r, tg)
	write(t, client, []byte("again"))
	if got := readN(t, server, 5, 5*time.Second); string(got) != "again" {
		t.Fatalf("got %q", got)
	}
	if a := r.Stats().Accepted; a != 2 {
		t.Fatalf("Accepted = %d, want 2", a)
	}
}

func TestDialFailureResets(t *testing.T) {
	tg := newTarget(t)
	addr := tg.addr()
	tg.ln.Close() // nothing listens there now
	r := startRelay(t, addr)
	// On loopback the reset may beat the end of the client's connect.
	c, err := net.DialTimeout("tcp", r.Addr(), 5*time.Second)
	if err == nil {
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("got %v, want ECONNRESET", err)
	}
	waitFor(t, "connection torn down", func() bool { return r.Stats().Active == 0 })
}

func TestStartRejectsNonLoopback(t *testing.T) {
	// Checked before binding, so nothing listens beyond loopback.
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0"} {
		if r, err := Start(addr, "127.0.0.1:1"); err == nil {
			r.Close()
			t.Errorf("Start(%q) succeeded", addr)
		}
	}
}

func TestInvalidDirectionPanics(t *testing.T) {
	tg := newTarget(t)
	r := startRelay(t, tg.addr())
	for _, d := range []Direction{0, 4, -1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("BlackHole(%v) did not panic", d)
				}
			}()
			r.BlackHole(d)
		}()
	}
}

// relayGoroutines returns the stacks of goroutines running the relay's
// code.
func relayGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "faultrelay.(*Relay)") || strings.Contains(g, "faultrelay.(*conn)") {
			found = append(found, g)
		}
	}
	return found
}

// TestCloseWaits leaves goroutines blocked in every way the relay can
// block, then checks that Close returns only after they all exited.
func TestCloseWaits(t *testing.T) {
	tg := newTarget(t)
	r, err := Start("127.0.0.1:0", tg.addr())
	if err != nil {
		t.Fatal(err)
	}

	// Stalled, with the sender blocked.
	c1, _ := pair(t, r, tg)
	r.Stall(ClientToServer)
	c1.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	c1.Write(random(t, 32<<20))
	r.Heal()

	// Waiting for tokens, and with chunks queued behind a long delay.
	r.SetRate(ServerToClient, 1)
	r.SetDelay(ClientToServer, time.Hour)
	c2, s2 := pair(t, r, tg)
	write(t, c2, []byte("delayed"))
	write(t, s2, []byte("throttled"))

	// Idle, and one the target has not accepted.
	pair(t, r, tg)
	dial(t, r.Addr())

	waitFor(t, "4 connections", func() bool { return r.Stats().Active == 4 })
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if g := relayGoroutines(); len(g) > 0 {
		t.Fatalf("goroutines left after Close:\n%s", strings.Join(g, "\n\n"))
	}
	if s := r.Stats(); s.Active != 0 || s.Accepted != 4 {
		t.Fatalf("Stats after Close = %+v", s)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", r.Addr(), time.Second); err == nil {
		t.Fatal("relay still accepts after Close")
	}
	goleak.VerifyNone(t)
}

// A side that goes away while black-holed must not be noticed by the other
// side, not even after Heal: the flow is gone, as behind a NAT that forgot it.
func TestBlackHoleSeversDeadSide(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r, err := Start("127.0.0.1:0", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	r.BlackHole(Both)
	c.(*net.TCPConn).SetLinger(0)
	c.Close() // RST towards the relay
	deadline := time.Now().Add(5 * time.Second)
	for r.Stats().Severed != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the relay did not sever the connection")
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.Heal()
	srv.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err = srv.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("the surviving side saw %v; want silence", err)
	}
	// New connections work again.
	c2, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	s2, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	c2.Write([]byte("x"))
	s2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := s2.Read(make([]byte, 1)); err != nil {
		t.Fatalf("new connection after Heal: %v", err)
	}
}

// SetIdleTimeout forgets a connection idle for the timeout, like a NAT:
// bytes either way are swallowed from then on, while a connection that
// keeps talking within the timeout lives on.
func TestIdleTimeout(t *testing.T) {
	tg := newTarget(t)
	r := startRelay(t, tg.addr())
	const idle = 300 * time.Millisecond
	r.SetIdleTimeout(idle)
	busyC, busyS := pair(t, r, tg)
	idleC, idleS := pair(t, r, tg)
	for range 6 { // 6 × idle/3: busy keeps talking past the timeout
		write(t, busyC, []byte("k"))
		if got := readN(t, busyS, 1, 5*time.Second); string(got) != "k" {
			t.Fatalf("busy connection: got %q", got)
		}
		time.Sleep(idle / 3)
	}
	// Severed during the loop already (it was idle for twice the timeout).
	if n := r.Stats().Severed; n != 1 {
		t.Fatalf("Severed = %d after the idle connection's silence, want 1", n)
	}
	write(t, busyS, []byte("ok"))
	if got := readN(t, busyC, 2, 5*time.Second); string(got) != "ok" {
		t.Fatalf("busy connection after the idle one was forgotten: %q", got)
	}
	write(t, idleS, []byte("wake"))
	expectNothing(t, idleC)
	write(t, idleC, []byte("late"))
	expectNothing(t, idleS)
}
