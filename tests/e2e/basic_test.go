package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const ready = 20 * time.Second // generous: binaries may be built with -race

// setup starts a server and a client with the given proxies and waits
// until the server accepts connections.
func setup(t *testing.T, serverExtra, clientExtra string) (srv, cli *proc, srvPort int) {
	t.Helper()
	srvPort = freePort(t)
	srv = start(t, "hops", serverConfig(srvPort, serverExtra))
	waitListening(t, loop(srvPort), ready)
	cli = start(t, "hopc", clientConfig(srvPort, clientExtra))
	return srv, cli, srvPort
}

func TestTCPEchoAndBulkTransfer(t *testing.T) {
	echoPort := tcpService(t, echo)
	sumPort := tcpService(t, digest)
	rEcho, rSum := freePort(t), freePort(t)
	srv, cli, _ := setup(t, "", tcpProxy("echo", echoPort, rEcho)+tcpProxy("sum", sumPort, rSum))
	waitProxy(t, loop(rEcho), ready)

	// 50 MB one way, the digest back after our half-close.
	const size = 50 << 20
	c, err := net.Dial("tcp", loop(rSum))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	h := sha256.New()
	if err := pattern(io.MultiWriter(c, h), size, 42); err != nil {
		t.Fatalf("sending: %v", err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading digest: %v", err)
	}
	if !bytes.Equal(got, h.Sum(nil)) {
		t.Fatalf("digest of 50 MB through the proxy differs: got %x want %x", got, h.Sum(nil))
	}

	// Many small echoes on several connections at once.
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			var err error
			for j := 0; j < 20 && err == nil; j++ {
				err = tcpEchoOnce(loop(rEcho), []byte(fmt.Sprintf("conn %d msg %d", i, j)))
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if code := cli.interrupt(10 * time.Second); code != 0 {
		t.Fatalf("hopc exit code %d after SIGINT", code)
	}
	if code := srv.interrupt(10 * time.Second); code != 0 {
		t.Fatalf("hops exit code %d after SIGINT", code)
	}
}

func TestUDPEcho(t *testing.T) {
	port := udpEcho(t)
	remote := freePort(t)
	_, _, _ = setup(t, "", udpProxy("dns", port, remote))
	conn, err := net.Dial("udp", loop(remote))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 65535)
	// The proxy comes up asynchronously: poll with single datagrams.
	eventually(t, ready, "a udp echo through the proxy", func() bool {
		conn.Write([]byte("hello"))
		conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := conn.Read(buf)
		return err == nil && string(buf[:n]) == "hello"
	})
	for {
		// drain stale echoes of the polling
		conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := conn.Read(buf); err != nil {
			break
		}
	}
	// In order within one source, up to the largest datagram.
	sizes := []int{2, 100, 1400, 9000, 32000, 65000}
	for i := range 60 {
		d := bytes.Repeat([]byte{byte(i)}, sizes[i%len(sizes)])
		binary.BigEndian.PutUint16(d, uint16(i)) // sequence number first
		if _, err := conn.Write(d); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("datagram %d (%d bytes): %v", i, len(d), err)
		}
		if !bytes.Equal(buf[:n], d) {
			t.Fatalf("datagram %d: got %d bytes, want %d", i, n, len(d))
		}
	}
	// A burst: the echoes come back in the order sent.
	for i := range 50 {
		conn.Write([]byte{0, byte(i)})
	}
	for i := range 50 {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("burst datagram %d: %v", i, err)
		}
		if n != 2 || buf[1] != byte(i) {
			t.Fatalf("burst datagram %d arrived as %v: reordered", i, buf[:n])
		}
	}
}

func TestServerRestartClientRecovers(t *testing.T) {
	echoPort := tcpService(t, echo)
	remote := freePort(t)
	srv, cli, srvPort := setup(t, "", tcpProxy("echo", echoPort, remote))
	waitProxy(t, loop(remote), ready)
	if code := srv.interrupt(10 * time.Second); code != 0 {
		t.Fatalf("hops exit %d", code)
	}
	srv2 := start(t, "hops", serverConfig(srvPort, ""))
	waitProxy(t, loop(remote), ready)
	if !cli.running() {
		t.Fatal("hopc exited while the server was down")
	}
	if cli.count(`msg="connection lost"`) < 1 || cli.count(`msg=reconnecting`) < 1 {
		t.Fatalf("hopc did not log the loss and the reconnect:\n%s", cli.out.String())
	}
	cli.interrupt(10 * time.Second)
	srv2.interrupt(10 * time.Second)
}

func TestClientStartsBeforeServer(t *testing.T) {
	echoPort := tcpService(t, echo)
	remote, srvPort := freePort(t), freePort(t)
	cli := start(t, "hopc", clientConfig(srvPort, tcpProxy("echo", echoPort, remote)))
	eventually(t, ready, "hopc to report the refused dial", func() bool { return cli.count("cannot connect to server") >= 2 })
	start(t, "hops", serverConfig(srvPort, ""))
	waitProxy(t, loop(remote), ready)
}

func TestWrongTokenExitsWithClearError(t *testing.T) {
	srvPort := freePort(t)
	srv := start(t, "hops", serverConfig(srvPort, ""))
	waitListening(t, loop(srvPort), ready)
	cfg := strings.Replace(clientConfig(srvPort, ""), "e2e-secret", "not-the-secret", 1)
	cli := start(t, "hopc", cfg)
	if code := cli.waitExit(ready); code == 0 {
		t.Fatal("hopc exited 0 with a wrong token")
	}
	out := cli.out.String()
	if !strings.Contains(out, "auth.token") || strings.Count(out, "authentication failed") < 1 {
		t.Fatalf("hopc's message does not name the token problem:\n%s", out)
	}
	if strings.Contains(out, "msg=reconnecting") || strings.Contains(out, "cannot connect") {
		t.Fatalf("hopc retried a permanent error:\n%s", out)
	}
	eventually(t, 5*time.Second, "hops to log the rejected login", func() bool { return srv.count("login rejected") == 1 })
}

func TestAllowPortsRejectsOneProxyOthersWork(t *testing.T) {
	echoPort := tcpService(t, echo)
	allowed, denied := freePort(t), freePort(t)
	srvExtra := fmt.Sprintf("allowPorts = [{ single = %d }]", allowed)
	_, cli, _ := setup(t, srvExtra, tcpProxy("denied", echoPort, denied)+tcpProxy("allowed", echoPort, allowed))
	waitProxy(t, loop(allowed), ready)
	eventually(t, 5*time.Second, "the refusal in hopc's log", func() bool {
		l := lineOf(cli, "proxy denied refused:")
		return strings.Contains(l, "not in the server's allowPorts") && strings.Contains(l, "not retrying")
	})
	if cli.count("proxy denied refused:") != 1 {
		t.Fatalf("hopc retried a permanent refusal:\n%s", cli.out.String())
	}
	if c, err := net.DialTimeout("tcp", loop(denied), time.Second); err == nil {
		c.Close()
		t.Fatal("the denied port accepts connections")
	}
}

func TestRemotePortZeroAndPortTaken(t *testing.T) {
	echoPort := tcpService(t, echo)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	_, cli, _ := setup(t, "", tcpProxy("auto", echoPort, 0)+tcpProxy("clash", echoPort, takenPort))
	re := regexp.MustCompile(`proxy started" client=\S+ proxy=auto type=tcp local=\S+ remote=127\.0\.0\.1:(\d+)`)
	var port int
	eventually(t, ready, "hopc to log the port the server picked", func() bool {
		m := re.FindStringSubmatch(cli.out.String())
		if m != nil {
			port, _ = strconv.Atoi(m[1])
		}
		return m != nil
	})
	waitProxy(t, loop(port), ready)
	// The clash may pass (the port may be freed), so hopc retries it.
	eventually(t, 5*time.Second, "the port clash in hopc's log", func() bool {
		l := lineOf(cli, "proxy clash refused:")
		return strings.Contains(l, "already in use on the server") && strings.Contains(l, "; retrying in ")
	})
}

func TestLocalServiceDown(t *testing.T) {
	echoPort := tcpService(t, echo)
	deadLocal := freePort(t) // nothing listens here
	rDead, rEcho := freePort(t), freePort(t)
	_, cli, _ := setup(t, "", tcpProxy("dead", deadLocal, rDead)+tcpProxy("echo", echoPort, rEcho))
	waitProxy(t, loop(rEcho), ready)
	waitListening(t, loop(rDead), ready)
	for range 3 {
		c, err := net.Dial("tcp", loop(rDead))
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("read data from a proxy whose local service is down")
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the connection to a dead local service hung instead of closing")
		}
		c.Close()
	}
	eventually(t, 5*time.Second, "the warning", func() bool { return cli.count("local service unreachable") == 1 })
	if err := tcpEchoOnce(loop(rEcho), []byte("still fine")); err != nil {
		t.Fatalf("the healthy proxy broke: %v", err)
	}
}

func TestVerifyReportsEveryProblem(t *testing.T) {
	srvPort := freePort(t)
	bad := clientConfig(srvPort, "[[proxies]]\nname = \"a\"\ntype = \"tcp\"\nlocalPort = 22\nremotePort = 70000\n\n[[proxies]]\nname = \"a\"\ntype = \"tcp\"\nlocalPort = 22\nremotePort = 6000\n") +
		"[heartbeat]\ninterval = 10\n"
	path := t.TempDir() + "/bad.toml"
	writeFile(t, path, bad)
	out, code := runBin(t, "hopc", "verify", "-c", path)
	if code == 0 {
		t.Fatalf("verify passed a bad file:\n%s", out)
	}
	for _, want := range []string{"bad.toml:12: proxies[0].remotePort", "bad.toml:15: proxies[1].name", "must be unique", "bad.toml:21: heartbeat.interval", `"10s"`} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}
	good := t.TempDir() + "/good.toml"
	writeFile(t, good, serverConfig(srvPort, ""))
	if out, code := runBin(t, "hops", "verify", "-c", good); code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("verify of a good file: code %d\n%s", code, out)
	}
}
