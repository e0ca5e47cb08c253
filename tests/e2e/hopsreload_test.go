package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHopsReloadOnSIGHUP: hops rereads its file on SIGHUP. A port the
// edit allows takes a proxy from then on while a connected client keeps
// its session and proxies; a changed key that needs a restart is named;
// an invalid edit is refused with its file:line and hops keeps serving
// with the config it had.
func TestHopsReloadOnSIGHUP(t *testing.T) {
	echoPort := tcpService(t, echo)
	oldPort, newPort := freePort(t), freePort(t)
	srv, cli, srvPort := setup(t, fmt.Sprintf("allowPorts = [{ single = %d }]", oldPort),
		tcpProxy("old", echoPort, oldPort)+tcpProxy("early", echoPort, newPort))
	cfgPath := srv.cmd.Args[2] // start runs hops -c FILE
	waitProxy(t, loop(oldPort), ready)
	eventually(t, ready, "hopc to log that hops refused the port", func() bool {
		return cli.count(fmt.Sprintf("remotePort %d is not in the server's allowPorts", newPort)) > 0
	})

	writeFile(t, cfgPath, serverConfig(srvPort, fmt.Sprintf("allowPorts = [{ single = %d }, { single = %d }]\nlog.level = \"debug\"\nmaxProxiesPerClient = 8\n[limits]\nmaxHandshakes = 100\n", oldPort, newPort)))
	if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, ready, "hops to apply the reload", func() bool {
		return srv.count(`msg="config reloaded" applied="allowPorts, maxProxiesPerClient, log.level"`) == 1
	})
	if srv.count(`msg="limits.maxHandshakes changed: needs a restart"`) != 1 {
		t.Errorf("hops did not say that limits.maxHandshakes needs a restart")
	}

	// The port allowed now takes a proxy; the first client stays.
	other := start(t, "hopc", clientConfig(srvPort, tcpProxy("late", echoPort, newPort)))
	waitProxy(t, loop(newPort), ready)
	waitProxy(t, loop(oldPort), ready)
	if n := srv.count("client logged in"); n != 2 {
		t.Errorf("%d logins, want 2 (the first client kept its session)", n)
	}
	if srv.count("client disconnected") != 0 || !cli.running() {
		t.Error("the reload disconnected the first client")
	}

	// An invalid edit is refused; hops keeps the running config.
	bad := serverConfig(srvPort, "allowPorts = [{ start = 3000 }]\nbindPrt = 1\n")
	writeFile(t, cfgPath, bad)
	if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	badLine := strings.Count(bad[:strings.Index(bad, "allowPorts")], "\n") + 1
	eventually(t, ready, "hops to refuse the invalid edit", func() bool {
		return srv.count("config reload refused: the running config stays") == 1
	})
	for _, want := range []string{
		fmt.Sprintf(`problem="%s:%d: allowPorts[0]: has start but no end`, cfgPath, badLine),
		fmt.Sprintf(`problem="%s:%d: bindPrt: unknown key; did you mean bindPort?"`, cfgPath, badLine+1),
	} {
		if srv.count(want) != 1 {
			t.Errorf("hops output lacks %s", want)
		}
	}
	if srv.count(`msg="config reloaded"`) != 1 {
		t.Error("the invalid edit was applied")
	}
	if !srv.running() {
		t.Fatalf("hops ended after an invalid edit: %v", srv.err)
	}
	waitProxy(t, loop(oldPort), ready)
	waitProxy(t, loop(newPort), ready)

	for _, p := range []*proc{other, cli, srv} {
		if code := p.interrupt(10 * time.Second); code != 0 {
			t.Fatalf("%s exit code %d after SIGINT", p.name, code)
		}
	}
}
