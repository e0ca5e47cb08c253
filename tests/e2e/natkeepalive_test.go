package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hopproxy/hop/tests/netlab"
)

// natLab is a server on a WAN and a client behind a NAT whose conntrack
// forgets established TCP flows after natIdle without traffic and drops
// the packets of forgotten flows (tcp_loose=0, invalid dropped): an idle
// tunnel dies silently, exactly as behind many home routers.
type natLab struct {
	srvHost, cliHost *netlab.Host
	srv, cli         *proc
	echoPort         int
}

const natIdle = 3 * time.Second

func startNATLab(t *testing.T, srvTuning, cliTuning string) *natLab {
	t.Helper()
	lab := netlab.New(t)
	wan := lab.Network("wan", "198.51.100.0/24")
	lan := lab.Network("lan", "10.77.0.0/24")
	n := &natLab{srvHost: lab.Host("srv"), cliHost: lab.Host("cli")}
	n.srvHost.Attach(wan, "198.51.100.10")
	lab.NAT("nat", wan, "198.51.100.2", lan, "10.77.0.1", netlab.NATConfig{
		Mode: netlab.PortPreserving, TCPEstablishedTimeout: natIdle, TCPLoose: false, DropInvalid: true,
	})
	n.cliHost.Attach(lan, "10.77.0.10")
	n.cliHost.DefaultRoute("10.77.0.1")

	// The private service: an echo server inside the client's namespace.
	var ln net.Listener
	if err := n.cliHost.Do(func() (err error) { ln, err = net.Listen("tcp", "127.0.0.1:0"); return }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	n.echoPort = ln.Addr().(*net.TCPAddr).Port

	srvCfg := "bindPort = 7000\nauth.token = \"e2e-secret\"\ngracePeriod = \"1s\"\n" + srvTuning
	n.srv = startIn(t, n.srvHost, "hops", srvCfg)
	cliCfg := fmt.Sprintf("serverAddr = \"198.51.100.10\"\nserverPort = 7000\nauth.token = \"e2e-secret\"\ngracePeriod = \"1s\"\n"+
		"[reconnect]\nminDelay = \"100ms\"\nmaxDelay = \"1s\"\n%s%s", cliTuning, tcpProxy("echo", n.echoPort, 6000))
	n.cli = startIn(t, n.cliHost, "hopc", cliCfg)
	eventually(t, ready, "an echo through the tunnel", func() bool { return n.echo("hello") == nil })
	return n
}

// startIn runs bin inside host's namespace; the lab ends it by PID.
func startIn(t testing.TB, h *netlab.Host, bin, cfg string) *proc {
	t.Helper()
	cmd := h.Command(context.Background(), filepath.Join(binDir, bin), "-c", writeConfig(t, bin, cfg))
	return launch(t, bin, cmd, func(c *exec.Cmd) (func() error, error) {
		p, err := h.StartCmd(c)
		if err != nil {
			return nil, err
		}
		return p.Wait, nil
	})
}

// dialPublic connects to the proxy's public port, as a user on the
// server's host.
func (n *natLab) dialPublic() (net.Conn, error) {
	var c net.Conn
	err := n.srvHost.Do(func() (err error) { c, err = net.DialTimeout("tcp", "127.0.0.1:6000", time.Second); return })
	return c, err
}

func (n *natLab) echo(msg string) error {
	c, err := n.dialPublic()
	if err != nil {
		return err
	}
	defer c.Close()
	return echoOn(c, msg)
}

func echoOn(c net.Conn, msg string) error {
	c.SetDeadline(time.Now().Add(2 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if string(got) != msg {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}

// Heartbeats further apart than the NAT's idle timeout: the NAT forgets
// the tunnel, hopc finds out through the heartbeat, says so, reconnects,
// and the proxy works again.
func TestNATForgetsIdleTunnel(t *testing.T) {
	// No mux keepalive: the heartbeat is the only traffic. The server's
	// timeout is long enough that hopc keeps its 5 s interval.
	n := startNATLab(t, tuning("5s", "20s", "0s", "10s"), tuning("5s", "8s", "0s", "10s"))
	eventually(t, 30*time.Second, "hopc to detect the dead tunnel", func() bool {
		return n.cli.count(`msg="connection lost"`) >= 1
	})
	lost := lineOf(n.cli, `msg="connection lost"`)
	t.Logf("hopc: %s", lost)
	if !strings.Contains(lost, "heartbeat timeout") {
		t.Fatalf("the loss was not attributed to the heartbeat: %s", lost)
	}
	eventually(t, ready, "an echo through the tunnel after the reconnect", func() bool { return n.echo("again") == nil })
	if n.srv.count(`msg="client logged in"`) < 2 {
		t.Fatalf("no second login on the server:\n%s", n.srv.out.String())
	}
}

// Heartbeats well inside the NAT's idle timeout keep the tunnel up: ten NAT
// timeouts pass with zero reconnects while a user connection sits idle, and
// that connection still carries data at the end.
func TestHeartbeatKeepsNATMappingAlive(t *testing.T) {
	fast := tuning("1s", "5s", "0s", "10s")
	n := startNATLab(t, fast, fast)
	c, err := n.dialPublic()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := echoOn(c, "before"); err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(10 * natIdle)
	for time.Now().Before(until) {
		if k := n.cli.count(`msg="connection lost"`); k != 0 {
			t.Fatalf("tunnel dropped while heartbeats ran inside the NAT timeout:\n%s", n.cli.out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := echoOn(c, "after 30 s idle"); err != nil {
		t.Fatalf("the idle user connection died: %v", err)
	}
	if k := n.srv.count(`msg="client logged in"`); k != 1 {
		t.Fatalf("%d logins, want 1", k)
	}
}

// With the heartbeat and the mux keepalive off, TCP keepalive is the only
// check left: its probes die in the NAT that forgot the flow, and hopc
// reports the kernel's own error, then reconnects.
func TestTCPKeepaliveReportsKernelError(t *testing.T) {
	off := "\n[heartbeat]\ninterval = \"0s\"\ntimeout = \"0s\"\n\n[mux]\nkeepaliveInterval = \"0s\"\n"
	ka := "\n[transport.tcpKeepalive]\nidle = \"4s\"\ninterval = \"1s\"\ncount = 2\n"
	n := startNATLab(t, off, off+ka)
	eventually(t, 30*time.Second, "hopc to lose the dead tunnel", func() bool {
		return n.cli.count(`msg="connection lost"`) >= 1
	})
	lost := lineOf(n.cli, `msg="connection lost"`)
	t.Logf("hopc: %s", lost)
	if !strings.Contains(lost, "connection timed out") {
		t.Fatalf("want the kernel's keepalive error (connection timed out): %s", lost)
	}
	eventually(t, ready, "an echo through the tunnel after the reconnect", func() bool { return n.echo("again") == nil })
}
