package e2e

import (
	"syscall"
	"testing"
	"time"
)

const hupLine = "SIGHUP ignored: hop has no reload yet; restart to apply a new config"

// TestSIGHUPIsIgnored: SIGHUP (a closed terminal, an operator expecting a
// reload) neither ends hopc nor hops; hopc says why it ignores it, hops
// reloads its unchanged file (hopsreload_test.go has the changes); both
// keep serving, and still exit cleanly on SIGINT.
func TestSIGHUPIsIgnored(t *testing.T) {
	echoPort := tcpService(t, echo)
	rPort := freePort(t)
	srv, cli, _ := setup(t, "", tcpProxy("echo", echoPort, rPort))
	waitProxy(t, loop(rPort), ready)
	for _, p := range []*proc{cli, srv} {
		for i := 1; i <= 2; i++ {
			if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			line := hupLine
			if p == srv {
				line = "config reloaded: nothing to apply"
			}
			eventually(t, ready, p.name+" to log that it handled SIGHUP, or exit", func() bool {
				return !p.running() || p.count(line) >= i
			})
			if !p.running() {
				t.Fatalf("%s ended on SIGHUP: %v", p.name, p.err)
			}
		}
	}
	waitProxy(t, loop(rPort), ready)
	for _, p := range []*proc{cli, srv} {
		if code := p.interrupt(10 * time.Second); code != 0 {
			t.Fatalf("%s exit code %d after SIGINT", p.name, code)
		}
	}
}
