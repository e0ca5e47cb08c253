package client_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/client"
	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/protocol"
	"github.com/hopproxy/hop/pkg/visit"
)

// tapOwner logs in to a real server as the owner of an stcp proxy and, for
// each stream the server relays to it, records every byte the server
// delivers and sends (what hops relays), passing them to an honest owner
// (visit.Owner with the secret, then an echo) — optionally flipping one
// byte of the owner's first data record on its way back.
type tapOwner struct {
	mu       sync.Mutex
	fromHops bytes.Buffer // visitor → owner, as hops delivers it
	toHops   bytes.Buffer // owner → visitor, as hops receives it
	flip     bool
	served   chan error
}

func startTapOwner(t *testing.T, port int, secret string, flip bool) *tapOwner {
	t.Helper()
	ms, ctrl := login(t, port, "t")
	t.Cleanup(func() { ms.Close() })
	if err := protocol.WriteMsg(ctrl, &protocol.NewProxy{Name: "sec", ProxyType: protocol.ProxySTCP}); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := protocol.ReadMsg(ctrl)
		if err != nil {
			t.Fatal(err)
		}
		if r, ok := m.(*protocol.NewProxyResp); ok {
			if r.Error != "" {
				t.Fatalf("register: %s", r.Error)
			}
			break
		}
	}
	go io.Copy(io.Discard, ctrl) // heartbeats and the like
	tap := &tapOwner{flip: flip, served: make(chan error, 1)}
	go func() {
		st, err := ms.Accept()
		if err != nil {
			return
		}
		defer st.Close()
		sw, err := protocol.ReadAs[*protocol.StartWork](st)
		if err != nil {
			tap.served <- err
			return
		}
		honest, wire := net.Pipe()
		go func() { // hops → owner
			buf := make([]byte, 4096)
			for {
				n, err := st.Read(buf)
				if n > 0 {
					tap.mu.Lock()
					tap.fromHops.Write(buf[:n])
					tap.mu.Unlock()
					wire.Write(buf[:n])
				}
				if err != nil {
					wire.Close()
					return
				}
			}
		}()
		go func() { // owner → hops
			buf := make([]byte, 4096)
			writes := 0
			for {
				n, err := wire.Read(buf)
				if n > 0 {
					writes++
					if tap.flip && writes == 2 { // after VisitAccept: the first sealed record
						buf[n-1] ^= 0x01
					}
					tap.mu.Lock()
					tap.toHops.Write(buf[:n])
					tap.mu.Unlock()
					st.Write(buf[:n])
				}
				if err != nil {
					st.Close()
					return
				}
			}
		}()
		sc, err := visit.Owner(honest, secret, visit.Identity{Proxy: "sec", ProxyType: "stcp", VisitorUser: sw.VisitorUser, VisitorID: sw.Visitor})
		if err != nil {
			tap.served <- err
			honest.Close()
			return
		}
		_, err = io.Copy(sc, sc)
		sc.CloseWrite()
		tap.served <- err
	}()
	return tap
}

func stcpVisitor(t *testing.T, srvPort int, secret string) (*logBuf, int) {
	t.Helper()
	vc := config.DefaultVisitor(config.ProxySTCP)
	vc.Name, vc.ServerName, vc.SecretKey, vc.BindPort = "v", "sec", secret, freePort(t)
	cfg := clientConfig(srvPort)
	cfg.ClientID = "laptop"
	cfg.Visitors = []config.VisitorConfig{vc}
	var log logBuf
	runClient(t, cfg, log.logger())
	return &log, vc.BindPort
}

// TestRelayedVisitIsSealedEndToEnd captures what hops relays between a
// real visitor and the owner of an stcp proxy: no byte of the user's data
// is in it, and the offline attack of the v1 proof (an HMAC dictionary
// check of the secretKey against the captured proof) has nothing to check.
func TestRelayedVisitIsSealedEndToEnd(t *testing.T) {
	port := freePort(t)
	var srvLog logBuf
	runServer(t, serverConfig(port), srvLog.logger())
	const secret = "hunter2-hunter2"
	tap := startTapOwner(t, port, secret, false)
	_, vport := stcpVisitor(t, port, secret)
	msg := []byte("GET /plaintext-that-hops-must-not-see HTTP/1.1\r\n\r\n")
	var app net.Conn
	eventually(t, 10*time.Second, "the visitor's port", func() bool {
		var err error
		app, err = net.Dial("tcp", addr(vport))
		return err == nil
	})
	defer app.Close()
	app.SetDeadline(time.Now().Add(20 * time.Second))
	app.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(app, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo through the relay: %q, %v", got, err)
	}
	app.(*net.TCPConn).CloseWrite() // half-close travels as a sealed end
	if rest, err := io.ReadAll(app); err != nil || len(rest) != 0 {
		t.Fatalf("after the half-close: %q, %v", rest, err)
	}
	if err := <-tap.served; err != nil {
		t.Fatalf("owner: %v", err)
	}
	tap.mu.Lock()
	up, down := bytes.Clone(tap.fromHops.Bytes()), bytes.Clone(tap.toHops.Bytes())
	tap.mu.Unlock()
	for _, word := range []string{"plaintext-that", "HTTP/1.1", "GET /"} {
		if bytes.Contains(up, []byte(word)) || bytes.Contains(down, []byte(word)) {
			t.Fatalf("hops relayed %q in clear", word)
		}
	}
	// The v1 offline attack: every 32-byte window of the capture against
	// HMAC-SHA256(guess, "hop visit v1" | proxy | visitor | any 8+32 bytes
	// of the capture as timestamp and nonce). Its proof was one such MAC.
	r := bytes.NewReader(up)
	hello, err := protocol.ReadAs[*protocol.VisitHello](r)
	if err != nil {
		t.Fatalf("capture does not start with a VisitHello: %v", err)
	}
	for _, guess := range []string{"password", "hunter2", secret} {
		mac := hmac.New(sha256.New, []byte(guess))
		mac.Write([]byte("hop visit v1"))
		for _, s := range []string{"sec", "laptop"} {
			mac.Write(binary.BigEndian.AppendUint16(nil, uint16(len(s))))
			mac.Write([]byte(s))
		}
		mac.Write(hello.SID)
		sum := mac.Sum(nil)
		if bytes.Contains(up, sum) || bytes.Contains(down, sum) {
			t.Fatalf("the capture checks the guess %q offline", guess)
		}
	}
	if strings.Contains(string(up), secret) {
		t.Fatal("the secret itself is in the capture")
	}
}

// TestRelayFlippedByteEndsConnection: hops (here the tap) flips one bit of
// a sealed record; the visitor ends the connection and says why.
func TestRelayFlippedByteEndsConnection(t *testing.T) {
	port := freePort(t)
	var srvLog logBuf
	runServer(t, serverConfig(port), srvLog.logger())
	startTapOwner(t, port, "k3y-k3y-k3y", true)
	log, vport := stcpVisitor(t, port, "k3y-k3y-k3y")
	var app net.Conn
	eventually(t, 10*time.Second, "the visitor's port", func() bool {
		var err error
		app, err = net.Dial("tcp", addr(vport))
		return err == nil
	})
	defer app.Close()
	app.SetDeadline(time.Now().Add(20 * time.Second))
	app.Write([]byte("tamper with my answer"))
	got, _ := io.ReadAll(app)
	if len(got) != 0 {
		t.Fatalf("the app got %q from a tampered record", got)
	}
	eventually(t, 10*time.Second, "the visitor to log the tampering", func() bool {
		return strings.Contains(log.String(), "record failed authentication")
	})
}

// TestP2PDirectOverLoopback runs the whole offer exchange (shares, both
// confirmations, sealed candidates, the server's go) between two real
// clients through a real server, and the punched xtcp and xudp paths it
// keys, on loopback.
func TestP2PDirectOverLoopback(t *testing.T) {
	defer client.LoopbackOnlyCandidates()()
	port := freePort(t)
	var srvLog, ownerLog, visLog logBuf
	runServer(t, serverConfig(port), srvLog.logger())
	const secret = "p2p-s3cret"
	px := config.DefaultProxy(config.ProxyXTCP)
	px.Name, px.LocalPort, px.SecretKey = "ssh", echoService(t), secret
	pu := config.DefaultProxy(config.ProxyXUDP)
	pu.Name, pu.LocalPort, pu.SecretKey = "game", udpEchoService(t), secret
	ocfg := clientConfig(port, px, pu)
	ocfg.ClientID = "owner"
	runClient(t, ocfg, ownerLog.logger())
	eventually(t, 10*time.Second, "the owner's proxies", func() bool {
		return strings.Count(srvLog.String(), "secret proxy registered") == 2
	})
	vx := config.DefaultVisitor(config.ProxyXTCP)
	vx.Name, vx.ServerName, vx.SecretKey, vx.BindPort = "vssh", "ssh", secret, freePort(t)
	vu := config.DefaultVisitor(config.ProxyXUDP)
	vu.Name, vu.ServerName, vu.SecretKey, vu.BindPort = "vgame", "game", secret, freePort(t)
	vcfg := clientConfig(port)
	vcfg.ClientID = "laptop"
	vcfg.Visitors = []config.VisitorConfig{vx, vu}
	runClient(t, vcfg, visLog.logger())

	eventually(t, 30*time.Second, "an xtcp echo", func() bool { return echoWorks(addr(vx.BindPort)) })
	defer func() {
		if t.Failed() {
			t.Logf("visitor:\n%s\nowner:\n%s\nserver:\n%s", visLog.String(), ownerLog.String(), srvLog.String())
		}
	}()
	eventually(t, 30*time.Second, "the xtcp direct path", func() bool {
		echoWorks(addr(vx.BindPort))
		return logLine(&visLog, `msg="direct path established"`, "visitor=vssh")
	})
	if !echoWorks(addr(vx.BindPort)) {
		t.Fatal("no echo over the direct xtcp path")
	}
	uc, err := net.Dial("udp", addr(vu.BindPort))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	buf := make([]byte, 100)
	eventually(t, 30*time.Second, "the xudp direct path and an echo over it", func() bool {
		uc.Write([]byte("dgram"))
		uc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := uc.Read(buf)
		return err == nil && string(buf[:n]) == "dgram" && logLine(&visLog, `msg="direct path established"`, "visitor=vgame")
	})
	if strings.Contains(ownerLog.String(), "P2P offer refused") || strings.Contains(visLog.String(), "could not prove") {
		t.Fatalf("an honest attempt was refused:\n%s\n%s", ownerLog.String(), visLog.String())
	}
}

func udpEchoService(t *testing.T) int {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, a, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], a)
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// logLine reports whether a line of l contains all of words.
func logLine(l *logBuf, words ...string) bool {
	for _, line := range strings.Split(l.String(), "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			return true
		}
	}
	return false
}
