package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// ppService is a local TCP service that decodes the PROXY protocol header
// hopc writes and answers "<version> <command> <src> <dst>\n", then
// echoes the rest.
func ppService(t *testing.T) int {
	return tcpService(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(c)
		h, err := proxyproto.Read(br)
		if err != nil {
			fmt.Fprintf(c, "no header: %v\n", err)
			return
		}
		fmt.Fprintf(c, "%d %s %v %v\n", h.Version, cmdName(h), h.SourceAddr, h.DestinationAddr)
		io.Copy(c, br)
	})
}

func cmdName(h *proxyproto.Header) string {
	if h.Command.IsLocal() {
		return "LOCAL"
	}
	return "PROXY"
}

// ppLine dials addr, reads the service's first line, and checks that the
// bytes after the header still echo. It returns the line and the dialing
// side's address (what the service must see as the source).
func ppLine(addr string) (line, local string, err error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("after-header")); err != nil {
		return "", "", err
	}
	br := bufio.NewReader(c)
	line, err = br.ReadString('\n')
	if err != nil {
		return "", "", err
	}
	rest := make([]byte, len("after-header"))
	if _, err := io.ReadFull(br, rest); err != nil {
		return "", "", fmt.Errorf("echo after header: %w (line %q)", err, line)
	}
	if string(rest) != "after-header" {
		return "", "", fmt.Errorf("echo after header is %q", rest)
	}
	return strings.TrimSpace(line), c.LocalAddr().String(), nil
}

func TestProxyProtocolTCPAndUDP(t *testing.T) {
	svc := ppService(t)
	// udp service: decodes the v2 DGRAM header in front of each datagram
	// and answers with the decoded source and the payload.
	upc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udone := make(chan struct{})
	go func() {
		defer close(udone)
		buf := make([]byte, 65535)
		for {
			n, a, err := upc.ReadFrom(buf)
			if err != nil {
				return
			}
			br := bufio.NewReader(bytes.NewReader(buf[:n]))
			h, err := proxyproto.Read(br)
			var reply string
			if err != nil {
				reply = "no header: " + err.Error()
			} else {
				rest, _ := io.ReadAll(br)
				reply = fmt.Sprintf("%d %s dgram=%t %v %v %s", h.Version, cmdName(h), h.TransportProtocol.IsDatagram(), h.SourceAddr, h.DestinationAddr, rest)
			}
			upc.WriteTo([]byte(reply), a)
		}
	}()
	t.Cleanup(func() { upc.Close(); <-udone })

	r1, r2, ru := freePort(t), freePort(t), freePort(t)
	proxies := tcpProxy("pp1", svc, r1) + "transport.proxyProtocolVersion = \"v1\"\n" +
		tcpProxy("pp2", svc, r2) + "transport.proxyProtocolVersion = \"v2\"\n" +
		udpProxy("ppu", upc.LocalAddr().(*net.UDPAddr).Port, ru) + "transport.proxyProtocolVersion = \"v2\"\n"
	setup(t, "", proxies)
	for _, c := range []struct {
		port    int
		version string
	}{{r1, "1"}, {r2, "2"}} {
		var line, local string
		eventually(t, ready, "a connection through the v"+c.version+" proxy", func() bool {
			var err error
			line, local, err = ppLine(loop(c.port))
			return err == nil
		})
		want := fmt.Sprintf("%s PROXY %s %s", c.version, local, loop(c.port))
		if line != want {
			t.Errorf("v%s: service saw %q, want %q", c.version, line, want)
		}
	}

	uc, err := net.Dial("udp", loop(ru))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	var reply string
	eventually(t, ready, "a datagram through the udp proxy", func() bool {
		uc.Write([]byte("dgram"))
		uc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 2048)
		n, err := uc.Read(buf)
		if err != nil {
			return false
		}
		reply = string(buf[:n])
		return true
	})
	want := fmt.Sprintf("2 PROXY dgram=true %s %s dgram", uc.LocalAddr(), loop(ru))
	if reply != want {
		t.Errorf("udp: service saw %q, want %q", reply, want)
	}
}

// TestProxyProtocolSTCP: a visitor of an stcp proxy has no address hops
// can vouch for; the local service gets a header saying so (v2 LOCAL).
func TestProxyProtocolSTCP(t *testing.T) {
	svc := ppService(t)
	srvPort := freePort(t)
	start(t, "hops", serverConfig(srvPort, ""))
	waitListening(t, loop(srvPort), ready)
	start(t, "hopc", withID(clientConfig(srvPort, fmt.Sprintf(`
[[proxies]]
name = "sec"
type = "stcp"
secretKey = "pp-secret-key"
localPort = %d
transport.proxyProtocolVersion = "v2"
`, svc)), "owner"))
	vt := freePort(t)
	start(t, "hopc", withID(clientConfig(srvPort, fmt.Sprintf(`
[[visitors]]
name = "v"
type = "stcp"
serverName = "sec"
secretKey = "pp-secret-key"
bindPort = %d
`, vt)), "visitor"))
	var line string
	eventually(t, ready, "a connection through the stcp visitor", func() bool {
		var err error
		line, _, err = ppLine(loop(vt))
		return err == nil
	})
	if line != "2 LOCAL <nil> <nil>" {
		t.Errorf("stcp: service saw %q, want a v2 LOCAL header", line)
	}
}
