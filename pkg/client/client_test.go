package client_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hopproxy/hop/pkg/auth"
	"github.com/hopproxy/hop/pkg/client"
	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/mux"
	"github.com/hopproxy/hop/pkg/protocol"
	"github.com/hopproxy/hop/pkg/server"
	"github.com/hopproxy/hop/pkg/transport"
	"github.com/hopproxy/hop/tests/faultrelay"
)

// kcp-go (behind pkg/xtcp) starts package-level scheduler goroutines at
// init that live for the whole process.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/xtaci/kcp-go/v5.(*TimedSched).sched"),
		goleak.IgnoreTopFunction("github.com/xtaci/kcp-go/v5.(*TimedSched).prepend"))
}

// logBuf is a concurrency-safe log sink.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuf) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// freePort returns a loopback port free for TCP and UDP a moment ago (the
// server's STUN responder uses UDP on its bindPort).
func freePort(t testing.TB) int {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		u, err := net.ListenPacket("udp", l.Addr().String())
		l.Close()
		if err == nil {
			u.Close()
			return l.Addr().(*net.TCPAddr).Port
		}
	}
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func serverConfig(port int) *config.ServerConfig {
	c := config.DefaultServer()
	c.BindAddr, c.BindPort, c.ProxyBindAddr = "127.0.0.1", port, "127.0.0.1"
	c.Auth.Token = "t"
	c.GracePeriod = config.Dur(200 * time.Millisecond)
	c.P2P.StunAltPort = 0 // tests run many servers at once
	return &c
}

func clientConfig(port int, proxies ...config.ProxyConfig) *config.ClientConfig {
	c := config.DefaultClient()
	c.ServerAddr, c.ServerPort = "127.0.0.1", port
	c.Auth.Token = "t"
	c.GracePeriod = config.Dur(200 * time.Millisecond)
	c.Reconnect.MinDelay = config.Dur(50 * time.Millisecond)
	c.Reconnect.MaxDelay = config.Dur(300 * time.Millisecond)
	c.Proxies = proxies
	return &c
}

func tcpProxy(name string, local, remote int) config.ProxyConfig {
	p := config.DefaultProxy(config.ProxyTCP)
	p.Name, p.LocalPort, p.RemotePort = name, local, remote
	return p
}

// runServer starts a server; the returned stop cancels it and waits.
func runServer(t testing.TB, cfg *config.ServerConfig, log *slog.Logger) (stop func()) {
	t.Helper()
	_, stop = startServer(t, cfg, log)
	return stop
}

// startServer is runServer that also returns the server.
func startServer(t testing.TB, cfg *config.ServerConfig, log *slog.Logger) (srv *server.Server, stop func()) {
	t.Helper()
	srv, err := server.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return srv, stop
}

func runClient(t testing.TB, cfg *config.ClientConfig, log *slog.Logger) (*client.Client, func() error) {
	t.Helper()
	c, err := client.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	var res error
	stop := func() error {
		once.Do(func() {
			cancel()
			res = <-done
		})
		return res
	}
	t.Cleanup(func() { stop() })
	return c, stop
}

func echoService(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); io.Copy(c, c); c.Close() }()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return l.Addr().(*net.TCPAddr).Port
}

func echoWorks(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	c.Write([]byte("ping"))
	b := make([]byte, 4)
	_, err = io.ReadFull(c, b)
	return err == nil && string(b) == "ping"
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// Starting and stopping a server and a client that carried traffic leaves
// no goroutine behind (checked by goleak in TestMain), and both stop
// cleanly.
func TestStartStopNoLeak(t *testing.T) {
	var slog, clog logBuf
	port, remote := freePort(t), freePort(t)
	stopSrv := runServer(t, serverConfig(port), slog.logger())
	c, stopCli := runClient(t, clientConfig(port, tcpProxy("echo", echoService(t), remote)), clog.logger())
	eventually(t, 5*time.Second, "echo through the proxy", func() bool { return echoWorks(addr(remote)) })
	if st := c.Stats(); st.Sessions != 1 || !st.LoggedIn {
		t.Fatalf("stats %+v", st)
	}
	if err := stopCli(); err != nil {
		t.Fatalf("client Run: %v", err)
	}
	stopSrv()
	eventually(t, 5*time.Second, "the server to log the clean disconnect", func() bool {
		return strings.Contains(slog.String(), `msg="client disconnected"`)
	})
}

// A connection that never speaks is closed after handshakeTimeout.
func TestHandshakeDeadline(t *testing.T) {
	var log logBuf
	port := freePort(t)
	cfg := serverConfig(port)
	cfg.Transport.HandshakeTimeout = config.Dur(300 * time.Millisecond)
	runServer(t, cfg, log.logger())
	c, err := net.Dial("tcp", addr(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept a silent connection open past its handshake timeout")
	}
	if took := time.Since(start); took < 250*time.Millisecond {
		t.Fatalf("closed after %v, before the handshake timeout", took)
	}
}

// login performs a real login by hand and returns the mux session, to
// play a misbehaving client.
func login(t *testing.T, port int, token string) (*mux.Session, net.Conn) {
	t.Helper()
	raw, err := net.Dial("tcp", addr(port))
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	b, err := transport.Binding(tc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auth.Client(tc, token, b, auth.NewIdentity(), protocol.ClientHello{ClientID: "manual", HeartbeatIntervalMs: 1000}); err != nil {
		t.Fatal(err)
	}
	ms, err := mux.Client(tc, mux.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := ms.Open()
	if err != nil {
		t.Fatal(err)
	}
	return ms, ctrl
}

func TestOversizeFrameDisconnects(t *testing.T) {
	var log logBuf
	port := freePort(t)
	runServer(t, serverConfig(port), log.logger())
	ms, ctrl := login(t, port, "t")
	defer ms.Close()
	hdr := []byte{protocol.Version, byte(protocol.TypeNewProxy), 0, 0, 0, 0}
	binary.BigEndian.PutUint32(hdr[2:], 1<<30)
	ctrl.Write(hdr)
	select {
	case <-ms.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the server kept a session that sent an oversize frame")
	}
	eventually(t, 5*time.Second, "the reason in the server log", func() bool {
		s := log.String()
		return strings.Contains(s, "protocol violation") && strings.Contains(s, "frame too large")
	})
}

func TestMaxProxiesPerClient(t *testing.T) {
	var log logBuf
	port := freePort(t)
	cfg := serverConfig(port)
	cfg.MaxProxiesPerClient = 1
	runServer(t, cfg, log.logger())
	ms, ctrl := login(t, port, "t")
	defer ms.Close()
	for _, name := range []string{"a", "b"} {
		protocol.WriteMsg(ctrl, &protocol.NewProxy{Name: name, ProxyType: "tcp"})
	}
	var got []*protocol.NewProxyResp
	for len(got) < 2 {
		m, err := protocol.ReadMsg(ctrl)
		if err != nil {
			t.Fatal(err)
		}
		if r, ok := m.(*protocol.NewProxyResp); ok {
			got = append(got, r)
		}
	}
	if got[0].Error != "" || got[1].Code != protocol.CodeTooManyProxies {
		t.Fatalf("responses %+v %+v", got[0], got[1])
	}
}

// A client whose link went dead without the server noticing comes back
// through the relay; the server replaces the half-dead session at once and
// the same public port works again.
func TestReconnectReplacesHalfDeadSession(t *testing.T) {
	var slog, clog logBuf
	port, remote := freePort(t), freePort(t)
	runServer(t, serverConfig(port), slog.logger()) // server heartbeat timeout: 30 s
	relay, err := faultrelay.Start("127.0.0.1:0", addr(port))
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	_, rp, _ := net.SplitHostPort(relay.Addr())
	ccfg := clientConfig(0, tcpProxy("echo", echoService(t), remote))
	ccfg.ServerPort, _ = strconv.Atoi(rp)
	ccfg.Heartbeat.Interval = config.Dur(100 * time.Millisecond)
	ccfg.Heartbeat.Timeout = config.Dur(500 * time.Millisecond)
	ccfg.Transport.HandshakeTimeout = config.Dur(500 * time.Millisecond)
	c, _ := runClient(t, ccfg, clog.logger())
	eventually(t, 5*time.Second, "echo through the proxy", func() bool { return echoWorks(addr(remote)) })

	relay.BlackHole(faultrelay.Both)
	eventually(t, 5*time.Second, "the client to notice the dead link", func() bool {
		return strings.Contains(clog.String(), "heartbeat timeout")
	})
	relay.Heal()
	eventually(t, 5*time.Second, "echo through the proxy after the reconnect", func() bool { return echoWorks(addr(remote)) })
	if s := slog.String(); !strings.Contains(s, "replacing the previous session") {
		t.Fatalf("server log lacks the replacement:\n%s", s)
	}
	if st := c.Stats(); st.Sessions < 2 {
		t.Fatalf("stats %+v", st)
	}
}

// A client whose heartbeat interval is too long for the server's timeout
// adapts instead of being dropped again and again.
func TestHeartbeatIntervalAdapts(t *testing.T) {
	var slog, clog logBuf
	port := freePort(t)
	scfg := serverConfig(port)
	scfg.Heartbeat.Interval = config.Dur(100 * time.Millisecond)
	scfg.Heartbeat.Timeout = config.Dur(600 * time.Millisecond)
	runServer(t, scfg, slog.logger())
	ccfg := clientConfig(port)
	ccfg.Heartbeat.Interval = config.Dur(5 * time.Second)
	ccfg.Heartbeat.Timeout = config.Dur(15 * time.Second)
	c, _ := runClient(t, ccfg, clog.logger())
	eventually(t, 5*time.Second, "the adaptation in the log", func() bool {
		return strings.Contains(clog.String(), `msg="heartbeat interval adapted to the server" client=`) &&
			strings.Contains(clog.String(), "using=200ms")
	})
	// Ten server timeouts later the first session is still the only one.
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		if st := c.Stats(); st.Sessions != 1 || !st.LoggedIn {
			t.Fatalf("session dropped: %+v\n%s", st, slog.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A client with heartbeats off against a server that requires them is
// told so and stops: reconnecting would not help.
func TestHeartbeatRequired(t *testing.T) {
	var slog, clog logBuf
	port := freePort(t)
	runServer(t, serverConfig(port), slog.logger())
	ccfg := clientConfig(port)
	ccfg.Heartbeat.Interval = config.Dur(0)
	c, err := client.New(ccfg, clog.logger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = c.Run(ctx)
	if !errors.Is(err, client.ErrPermanent) || !strings.Contains(err.Error(), `heartbeat.interval`) {
		t.Fatalf("Run = %v", err)
	}
}
