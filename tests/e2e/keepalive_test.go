package e2e

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hopproxy/hop/tests/faultrelay"
)

// keepalive settings of one side, as TOML tables.
func tuning(hbInterval, hbTimeout, muxInterval, muxTimeout string) string {
	return fmt.Sprintf("\n[heartbeat]\ninterval = %q\ntimeout = %q\n\n[mux]\nkeepaliveInterval = %q\nkeepaliveTimeout = %q\n",
		hbInterval, hbTimeout, muxInterval, muxTimeout)
}

// relayed starts hops, a fault relay in front of it and a hopc that goes
// through the relay, with one echo and one digest proxy. It returns once a
// user connection works.
type relayed struct {
	srv, cli          *proc
	relay             *faultrelay.Relay
	echoAddr, sumAddr string
}

func startRelayed(t *testing.T, srvTuning, cliTuning string) *relayed {
	t.Helper()
	srvPort := freePort(t)
	r := &relayed{}
	r.srv = start(t, "hops", serverConfig(srvPort, srvTuning))
	waitListening(t, loop(srvPort), ready)
	var err error
	r.relay, err = faultrelay.Start("127.0.0.1:0", loop(srvPort))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.relay.Close() })
	_, rp, _ := net.SplitHostPort(r.relay.Addr())
	relayPort, _ := strconv.Atoi(rp)
	rEcho, rSum := freePort(t), freePort(t)
	r.echoAddr, r.sumAddr = loop(rEcho), loop(rSum)
	proxies := tcpProxy("echo", tcpService(t, echo), rEcho) + tcpProxy("sum", tcpService(t, digest), rSum)
	r.cli = start(t, "hopc", clientConfig(relayPort, cliTuning+proxies+"\n[transport]\nhandshakeTimeout = \"1s\"\n"))
	waitProxy(t, r.echoAddr, ready)
	return r
}

// waitCause polls both logs for the disconnect lines and returns how long
// after since they appeared.
func (r *relayed) waitCause(t *testing.T, since time.Time, cause string, d time.Duration) time.Duration {
	t.Helper()
	eventually(t, d, "both sides to report "+cause, func() bool {
		return strings.Contains(lineOf(r.cli, `msg="connection lost"`), cause) &&
			strings.Contains(lineOf(r.srv, `msg="client disconnected"`), cause)
	})
	return time.Since(since)
}

// lineOf returns the first output line of p containing s.
func lineOf(p *proc, s string) string {
	for _, l := range strings.Split(p.out.String(), "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

func TestBlackHoleTripsHeartbeat(t *testing.T) {
	// Heartbeat 200 ms / 1 s; mux keepalive far away so it cannot fire first.
	hb := tuning("200ms", "1s", "30s", "10s")
	r := startRelayed(t, hb, hb)
	start := time.Now()
	r.relay.BlackHole(faultrelay.Both)
	took := r.waitCause(t, start, "heartbeat timeout", 10*time.Second)
	// Both sides last heard the other at most one interval before the
	// fault; allow scheduling slack of the race-enabled binaries.
	if took > time.Second+1500*time.Millisecond {
		t.Errorf("heartbeat timeout reported %v after the black hole; heartbeat.timeout is 1s", took)
	}
	t.Logf("hopc: %s", lineOf(r.cli, `msg="connection lost"`))
	t.Logf("hops: %s", lineOf(r.srv, `msg="client disconnected"`))
	// The server closed the dead session and freed its public ports.
	eventually(t, 5*time.Second, "the dead client's port to close", func() bool {
		c, err := net.DialTimeout("tcp", r.echoAddr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	r.relay.Heal()
	waitProxy(t, r.echoAddr, ready) // a new user connection after the reconnect
	if n := r.cli.count(`msg="connection lost"`); n != 1 {
		t.Fatalf("hopc logged the disconnect %d times, want once:\n%s", n, r.cli.out.String())
	}
}

func TestMuxKeepaliveAndHeartbeatReportDistinctly(t *testing.T) {
	t.Run("mux fires first", func(t *testing.T) {
		tun := tuning("1s", "30s", "200ms", "1s")
		r := startRelayed(t, tun, tun)
		r.relay.BlackHole(faultrelay.Both)
		r.waitCause(t, time.Now(), "mux keepalive timeout", 10*time.Second)
		if strings.Contains(lineOf(r.cli, `msg="connection lost"`), "heartbeat timeout") {
			t.Fatal("the heartbeat was blamed for a mux keepalive timeout")
		}
		t.Logf("hopc: %s", lineOf(r.cli, `msg="connection lost"`))
	})
	t.Run("heartbeat fires first", func(t *testing.T) {
		tun := tuning("200ms", "1s", "1s", "20s")
		r := startRelayed(t, tun, tun)
		r.relay.BlackHole(faultrelay.Both)
		r.waitCause(t, time.Now(), "heartbeat timeout", 10*time.Second)
		if strings.Contains(lineOf(r.cli, `msg="connection lost"`), "mux keepalive") {
			t.Fatal("the mux keepalive was blamed for a heartbeat timeout")
		}
	})
}

// Bulk transfers on 8 streams that saturate a slow link for several
// heartbeat timeouts must not trip any keepalive, though every stream's
// window of data queues ahead of the control frames.
func TestSaturatedLinkNoFalseTimeout(t *testing.T) {
	tun := tuning("200ms", "1s", "500ms", "3s")
	r := startRelayed(t, tun, tun)
	const rate = 512 << 10
	const streams, size = 8, 384 << 10 // 3 MiB in all: about 6 s at the rate, six heartbeat timeouts
	r.relay.SetRate(faultrelay.Both, rate)
	start := time.Now()
	errs := make(chan error, streams)
	for i := range streams {
		go func() { errs <- digestRoundTrip(r.sumAddr, size, uint64(i)) }()
	}
	for range streams {
		if err := <-errs; err != nil {
			t.Fatalf("%v\nhopc:\n%s", err, r.cli.out.String())
		}
	}
	took := time.Since(start)
	t.Logf("moved %d KiB on %d streams through a %d KiB/s link in %v", streams*size>>10, streams, rate>>10, took.Round(time.Millisecond))
	if took < 3*time.Second {
		t.Fatalf("the transfer took %v: the link was not saturated for several timeouts", took)
	}
	if n := r.cli.count(`msg="connection lost"`) + r.srv.count(`msg="client disconnected"`); n != 0 {
		t.Fatalf("%d disconnects under load:\nhopc:\n%s\nhops:\n%s", n, r.cli.out.String(), r.srv.out.String())
	}
}

// digestRoundTrip sends size pattern bytes to a digest service, half-closes
// and checks the SHA-256 it answers.
func digestRoundTrip(addr string, size int64, seed uint64) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	h := sha256.New()
	if err := pattern(io.MultiWriter(c, h), size, seed); err != nil {
		return fmt.Errorf("sending: %w", err)
	}
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("reading the digest: %w", err)
	}
	if !bytes.Equal(got, h.Sum(nil)) {
		return fmt.Errorf("digest %x, want %x", got, h.Sum(nil))
	}
	return nil
}

func TestIdleLinkStaysUp(t *testing.T) {
	tun := tuning("100ms", "500ms", "200ms", "1s")
	r := startRelayed(t, tun, tun)
	// 40 heartbeat intervals and 8 timeouts with no user traffic.
	idle := time.Now().Add(4 * time.Second)
	for time.Now().Before(idle) {
		if n := r.cli.count(`msg="connection lost"`); n != 0 {
			t.Fatalf("idle tunnel dropped:\n%s", r.cli.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := r.srv.count(`msg="client logged in"`); n != 1 {
		t.Fatalf("%d logins on an idle healthy link, want 1", n)
	}
	if err := tcpEchoOnce(r.echoAddr, []byte("after idle")); err != nil {
		t.Fatal(err)
	}
}
