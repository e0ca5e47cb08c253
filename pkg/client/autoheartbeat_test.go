package client_test

import (
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/client"
	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/idletimeout"
	"github.com/hopproxy/hop/tests/faultrelay"
)

// runAutoClient runs a client with heartbeat.interval = "auto", its
// learner tuned by tune and its probes' grace shortened, until the test
// ends.
func runAutoClient(t *testing.T, cfg *config.ClientConfig, log *logBuf, tune func(*idletimeout.Config)) *client.Client {
	t.Helper()
	cfg.Heartbeat.Interval = config.AutoDuration
	c, err := client.New(cfg, log.logger())
	if err != nil {
		t.Fatal(err)
	}
	client.TuneAutoHeartbeat(c, tune, 300*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return c
}

// Behind a middlebox that forgets TCP flows idle for 1.2 s, "auto" learns
// that from its probes without losing the session, picks an interval
// below it, and hops follows: its view of the client and its own
// heartbeat carry the learnt interval. A user connection kept idle for
// 3 s through the tunnel still works.
func TestAutoHeartbeatLearnsIdleTimeout(t *testing.T) {
	port, remote := freePort(t), freePort(t)
	var slog, clog logBuf
	srv, stopSrv := startServer(t, serverConfig(port), slog.logger())
	defer stopSrv()
	nat, err := faultrelay.Start("127.0.0.1:0", addr(port))
	if err != nil {
		t.Fatal(err)
	}
	defer nat.Close()
	const forget = 1200 * time.Millisecond
	nat.SetIdleTimeout(forget)
	ccfg := clientConfig(port, tcpProxy("echo", echoService(t), remote))
	ccfg.ServerPort = portOf(t, nat.Addr())
	c := runAutoClient(t, ccfg, &clog, func(ic *idletimeout.Config) {
		ic.Min, ic.Max, ic.Start = 100*time.Millisecond, 10*time.Second, 300*time.Millisecond
	})
	var st client.AutoHeartbeat
	eventually(t, 60*time.Second, "auto to converge", func() bool {
		var ok bool
		st, ok = client.AutoHeartbeatStatus(c)
		return ok && st.Converged
	})
	t.Logf("learnt behind a %v idle timeout: %+v", forget, st)
	if st.Survived <= 0 || st.Survived >= forget || st.Failed < forget || st.Interval >= forget || st.Interval < 100*time.Millisecond {
		t.Fatalf("learnt %+v behind a %v idle timeout", st, forget)
	}
	if !strings.Contains(clog.String(), "heartbeat interval learned: path forgets idle TCP after") {
		t.Errorf("no info line about what was learnt:\n%s", clog.String())
	}
	// The client's status reads hops' accepted interval, which follows the
	// learnt one a round trip later: compare both views as they settle.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ = client.AutoHeartbeatStatus(c)
		cs := srv.Clients()
		if len(cs) == 1 && cs[0].Online && cs[0].HeartbeatIntervalMs == st.Interval.Milliseconds() && cs[0].LearnedIdleMs == st.Survived.Milliseconds() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hops' view of the client %+v; want the learnt interval %v and silence %v", cs, st.Interval, st.Survived)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := c.Stats().Sessions; n != 1 {
		t.Fatalf("%d sessions while learning behind a %v idle timeout, want 1 (none lost)", n, forget)
	}
	if strings.Contains(slog.String(), "client disconnected") {
		t.Fatalf("hops saw the session end:\n%s", slog.String())
	}
	// A user connection idle for 3 s (2.5× what the path keeps) lives
	// on: its stream rides the control connection the heartbeat keeps.
	conn, err := net.Dial("tcp", addr(remote))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range 2 {
		if i == 1 {
			time.Sleep(3 * time.Second) // the silence under test, not a wait for readiness
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 4)
		if _, err := io.ReadFull(conn, b); err != nil || string(b) != "ping" {
			t.Fatalf("echo %d through the tunnel: %q %v", i, b, err)
		}
	}
	if n := c.Stats().Sessions; n != 1 {
		t.Fatalf("%d sessions after the idle user connection, want 1", n)
	}
}

// portOf is the port of a host:port.
func portOf(t *testing.T, hostport string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
