package e2e

import (
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/hopproxy/hop/pkg/auth"
	"github.com/hopproxy/hop/pkg/protocol"
	"github.com/hopproxy/hop/pkg/transport"
)

// loginAsAttacker logs in to hops at addr with the shared token, as any
// token holder can, and returns the raw yamux session it then speaks: the
// attacker is not bound by hopc's own stream limits.
func loginAsAttacker(t *testing.T, addr, token string) *yamux.Session {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, ready)
	if err != nil {
		t.Fatal(err)
	}
	raw.SetDeadline(time.Now().Add(ready))
	tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	binding, err := transport.Binding(tc)
	if err != nil {
		t.Fatal(err)
	}
	hello := protocol.ClientHello{ClientID: "attacker", Software: "probe", HeartbeatIntervalMs: 10000}
	if _, err := auth.Client(tc, token, binding, auth.NewIdentity(), hello); err != nil {
		t.Fatalf("login: %v", err)
	}
	raw.SetDeadline(time.Time{})
	yc := yamux.DefaultConfig()
	yc.EnableKeepAlive = false
	yc.LogOutput = discard{}
	ys, err := yamux.Client(tc, yc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ys.Close() })
	if _, err := ys.OpenStream(); err != nil { // the control stream
		t.Fatal(err)
	}
	return ys
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestJunkStreamsAgainstHops re-runs the audit's junk-stream attack on a
// real hops from outside: a token holder logs in and opens 1,000 streams,
// each filled with 256 KiB of junk (a stream's whole initial window) and
// never closed. Before the bounds, hops' live heap went from 8 MB to
// 501 MB and stayed there after the session ended. Now hops refuses what
// is over limits.maxStreamsPerSession, rejects each junk stream after its
// first bytes and frees its buffer at once: its resident memory stays
// within a bound far below the junk sent, and it keeps serving a real
// client during and after the attack.
func TestJunkStreamsAgainstHops(t *testing.T) {
	const streams, junk = 1000, 256 << 10
	srvPort := freePort(t)
	srv := start(t, "hops", serverConfig(srvPort, ""))
	waitListening(t, loop(srvPort), ready)
	echoPort := tcpService(t, echo)
	rPort := freePort(t)
	cli := start(t, "hopc", clientConfig(srvPort, tcpProxy("echo", echoPort, rPort)))
	waitProxy(t, loop(rPort), ready)
	pid := srv.cmd.Process.Pid
	base := procStatus(pid, "VmRSS")

	ys := loginAsAttacker(t, loop(srvPort), "e2e-secret")
	payload := make([]byte, junk)
	var sent, refused atomic.Int64
	var wg sync.WaitGroup
	for range streams {
		st, err := ys.OpenStream()
		if err != nil {
			refused.Add(1)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.SetWriteDeadline(time.Now().Add(30 * time.Second))
			n, err := st.Write(payload)
			sent.Add(int64(n))
			if err != nil && !errors.Is(err, yamux.ErrStreamClosed) {
				refused.Add(1)
			}
		}()
	}
	peak := base
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
wait:
	for {
		select {
		case <-done:
			break wait
		case <-tick.C:
			peak = max(peak, procStatus(pid, "VmRSS"))
		case <-deadline:
			t.Fatal("the attacker's writes did not end within 60 s")
		}
	}
	peak = max(peak, procStatus(pid, "VmRSS"))
	// A real user is still served while the attacker's session is up.
	if err := tcpEchoOnce(loop(rPort), []byte("still here")); err != nil {
		t.Fatalf("echo through hops during the attack: %v", err)
	}
	ys.Close()
	after := procStatus(pid, "VmRSS")
	t.Logf("junk streams: %d opened, %.0f MiB of junk sent, %d refused or reset; hops RSS %d MB before, peak %d MB, %d MB after (race build: %v)",
		streams, float64(sent.Load())/(1<<20), refused.Load(), base/1024, peak/1024, after/1024, raceEnabled)
	// Buffering the junk would take at least the bytes sent; the bound
	// leaves room for the race detector's shadow memory, not for that.
	limit := 128
	if raceEnabled {
		limit = 256
	}
	if grow := (peak - base) / 1024; grow > limit {
		t.Fatalf("hops' RSS grew by %d MB during the attack (%.0f MiB of junk sent); want at most %d MB", grow, float64(sent.Load())/(1<<20), limit)
	}
	if !srv.running() || !cli.running() {
		t.Fatal("hops or hopc exited during the attack")
	}
	// Its session's end must not stall hops: the streams it left are
	// torn down without starving the others (before hop's yamux fix,
	// 1,000 closed streams spun until the session's Close reached each,
	// and a real user's echo timed out for over 20 s).
	closed := time.Now()
	if err := tcpEchoOnce(loop(rPort), []byte("after")); err != nil {
		t.Fatalf("echo through hops right after the attacker left: %v", err)
	}
	t.Logf("echo right after the attacker left: %v", time.Since(closed).Round(time.Millisecond))
	if code := cli.interrupt(10 * time.Second); code != 0 {
		t.Fatalf("hopc exit code %d", code)
	}
	if code := srv.interrupt(10 * time.Second); code != 0 {
		t.Fatalf("hops exit code %d", code)
	}
}

// tlsMITM terminates hopc's TLS with its own certificate, opens its own TLS
// connection to upstream and relays the plaintext both ways: a middlebox
// or an impostor that sits in the path and sees every login byte. It
// returns its address and a count of the bytes hopc sent through it.
func tlsMITM(t *testing.T, upstream string) (string, *atomic.Int64) {
	t.Helper()
	cfg, _, err := transport.ServerTLS("", "")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var fromClient atomic.Int64
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := tls.Dial("tcp", upstream, &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				c.Close()
				continue
			}
			wg.Add(2)
			go func() { // hopc -> hops, counted
				defer wg.Done()
				buf := make([]byte, 4096)
				for {
					c.SetReadDeadline(time.Now().Add(ready))
					n, err := c.Read(buf)
					fromClient.Add(int64(n))
					if n > 0 {
						up.Write(buf[:n])
					}
					if err != nil {
						up.Close()
						return
					}
				}
			}()
			go func() { // hops -> hopc
				defer wg.Done()
				buf := make([]byte, 4096)
				for {
					up.SetReadDeadline(time.Now().Add(ready))
					n, err := up.Read(buf)
					if n > 0 {
						c.Write(buf[:n])
					}
					if err != nil {
						c.Close()
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), &fromClient
}

// TestMITMCannotSpliceLogin: hopc skips certificate checks by default, so
// anything in the path can terminate its TLS. A middlebox that relays the
// login between its two TLS sessions gets no session: the login is bound
// to the TLS channel it ran on, so the real hops refuses it, and hopc stops
// with a permanent error instead of retrying into the middlebox forever.
// (That the bytes it saw give it nothing to test token guesses against
// offline is shown by pkg/auth's TestImpostorServer against the same
// auth.Client that hopc runs.)
func TestMITMCannotSpliceLogin(t *testing.T) {
	srvPort := freePort(t)
	srv := start(t, "hops", serverConfig(srvPort, ""))
	waitListening(t, loop(srvPort), ready)
	addr, seen := tlsMITM(t, loop(srvPort))
	mport := addr[strings.LastIndexByte(addr, ':')+1:]
	echoPort := tcpService(t, echo)
	rPort := freePort(t)
	mitmPort, _ := strconv.Atoi(mport)
	cli := start(t, "hopc", clientConfig(mitmPort, tcpProxy("echo", echoPort, rPort)))
	if code := cli.waitExit(ready); code != 1 {
		t.Fatalf("hopc exit code %d through a TLS-splicing middlebox, want 1", code)
	}
	if cli.count("authentication failed") == 0 || cli.count("terminates TLS") == 0 || cli.count("giving up") == 0 {
		t.Errorf("hopc did not say why it gave up:\n%s", cli.out.String())
	}
	if srv.count("login rejected") == 0 || srv.count("client logged in") != 0 {
		t.Errorf("hops did not refuse the spliced login:\n%s", srv.out.String())
	}
	if c, err := net.DialTimeout("tcp", loop(rPort), time.Second); err == nil {
		c.Close()
		t.Fatal("the proxy's port was opened through the middlebox")
	}
	if testing.Verbose() {
		t.Logf("hopc:\n%s", cli.out.String())
	}
	t.Logf("the middlebox relayed %d bytes of hopc's login; hops refused it, hopc exited 1", seen.Load())
}
