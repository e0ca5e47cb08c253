package e2e

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestE2EFakeOwnerGetsNothing: a hopc that registers the stcp/sudp proxy
// with a wrong secretKey (a fake owner) cannot confirm the visit
// handshake: the visitor refuses it before sending a byte of the user's
// data, so the fake owner's local services never see a connection or a
// datagram.
func TestE2EFakeOwnerGetsNothing(t *testing.T) {
	srvPort := freePort(t)
	srv := start(t, "hops", serverConfig(srvPort, ""))
	waitListening(t, loop(srvPort), ready)
	var conns, dgrams atomic.Int64
	tcpPort := tcpService(t, func(c net.Conn) { conns.Add(1); io.Copy(io.Discard, c) })
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := udp.ReadFrom(buf); err != nil {
				return
			}
			dgrams.Add(1)
		}
	}()
	fake := start(t, "hopc", withID(clientConfig(srvPort, stcpOwner(tcpPort, udp.LocalAddr().(*net.UDPAddr).Port, "not-the-secret", "")), "fake-owner"))
	eventually(t, ready, "the fake owner's proxies", func() bool { return srv.count("secret proxy registered") == 2 })
	vt, vu := freePort(t), freePort(t)
	vis := start(t, "hopc", withID(clientConfig(srvPort, stcpVisitor(vt, vu, "the-real-secret")), "visitor"))
	waitListening(t, loop(vt), ready)
	uc, err := net.Dial("udp", loop(vu))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	eventually(t, ready, "the visitor to refuse the fake owner for stcp and sudp", func() bool {
		c, err := net.DialTimeout("tcp", loop(vt), time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			c.Write([]byte("the user's secret data"))
			io.Copy(io.Discard, c)
			c.Close()
		}
		uc.Write([]byte("a secret datagram"))
		return strings.Count(vis.out.String(), "could not prove it knows the secretKey") >= 2
	})
	if n, d := conns.Load(), dgrams.Load(); n != 0 || d != 0 {
		t.Fatalf("the fake owner's services got %d connections and %d datagrams, want none", n, d)
	}
	eventually(t, 5*time.Second, "the fake owner to log the failed handshake", func() bool {
		return strings.Contains(lineOf(fake, "visitor refused"), "visitor authentication failed")
	})
}

// TestE2ESealedRelayHalfCloseAndIntegrity: a large transfer through the
// sealed relay arrives intact and the visitor's half-close still reaches
// the service (digest answers only after EOF).
func TestE2ESealedRelayHalfCloseAndIntegrity(t *testing.T) {
	srvPort := freePort(t)
	start(t, "hops", serverConfig(srvPort, ""))
	waitListening(t, loop(srvPort), ready)
	start(t, "hopc", withID(clientConfig(srvPort, stcpOwner(tcpService(t, digest), udpEcho(t), "s3cret-key", "")), "owner"))
	vt, vu := freePort(t), freePort(t)
	start(t, "hopc", withID(clientConfig(srvPort, stcpVisitor(vt, vu, "s3cret-key")), "visitor"))
	waitListening(t, loop(vt), ready)
	const size = 3 << 20
	var sum []byte
	eventually(t, ready, "a digest through the sealed relay", func() bool {
		c, err := net.DialTimeout("tcp", loop(vt), time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		h := sha256.New()
		if err := pattern(io.MultiWriter(c, h), size, 7); err != nil {
			return false
		}
		c.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(c)
		sum = h.Sum(nil)
		return err == nil && bytes.Equal(got, sum)
	})
}

// withUser puts a user (and a serverUser for visitors) into a client
// config, before its first table.
func withUser(cfg, user string) string {
	return strings.Replace(cfg, "gracePeriod", fmt.Sprintf("user = %q\ngracePeriod", user), 1)
}

// TestE2EImpostorOwnerCannotBeReached: a second hopc registers the same
// proxy name under another user — even with the right secretKey. The
// visitor, which names its owner's user (serverUser) and binds it into the
// visit handshake, reaches the real owner only; the impostor's service
// never sees a connection.
func TestE2EImpostorOwnerCannotBeReached(t *testing.T) {
	srvPort := freePort(t)
	srv := start(t, "hops", serverConfig(srvPort, ""))
	waitListening(t, loop(srvPort), ready)
	var realConns, impConns atomic.Int64
	realPort := tcpService(t, func(c net.Conn) { realConns.Add(1); echo(c) })
	impPort := tcpService(t, func(c net.Conn) { impConns.Add(1); echo(c) })
	owner := func(id, user string, port int, allow string) *proc {
		return start(t, "hopc", withUser(withID(clientConfig(srvPort, fmt.Sprintf(`
[[proxies]]
name = "sec-tcp"
type = "stcp"
secretKey = "the-real-secret"
localPort = %d
allowUsers = [%q]
`, port, allow)), id), user))
	}
	owner("owner", "bob", realPort, "alice")
	eventually(t, ready, "the real owner's proxy", func() bool { return srv.count("secret proxy registered") == 1 })
	imp := owner("impostor", "mallory", impPort, "*")
	eventually(t, ready, "the impostor's registration to be answered", func() bool {
		return srv.count("secret proxy registered") == 2 || imp.count("proxy") > 0
	})
	vt := freePort(t)
	start(t, "hopc", withUser(withID(clientConfig(srvPort, fmt.Sprintf(`
[[visitors]]
name = "v-tcp"
type = "stcp"
serverName = "sec-tcp"
serverUser = "bob"
secretKey = "the-real-secret"
bindPort = %d
`, vt)), "alice"), "alice"))
	waitProxy(t, loop(vt), ready)
	for range 5 {
		if err := tcpEchoOnce(loop(vt), []byte("to bob only")); err != nil {
			t.Fatal(err)
		}
	}
	if realConns.Load() < 5 || impConns.Load() != 0 {
		t.Fatalf("the real owner got %d connections, the impostor %d; want >= 5 and 0", realConns.Load(), impConns.Load())
	}
}
