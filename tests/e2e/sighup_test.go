package e2e

import (
	"syscall"
	"testing"
	"time"
)

// TestSIGHUPReloads: SIGHUP (a closed terminal, an operator's reload)
// ends neither hopc nor hops; each reloads its unchanged file and says so
// (reload_test.go and hopsreload_test.go have the changes); both keep
// serving, and still exit cleanly on SIGINT.
func TestSIGHUPReloads(t *testing.T) {
	echoPort := tcpService(t, echo)
	rPort := freePort(t)
	srv, cli, _ := setup(t, "", tcpProxy("echo", echoPort, rPort))
	waitProxy(t, loop(rPort), ready)
	for _, p := range []*proc{cli, srv} {
		for i := 1; i <= 2; i++ {
			if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			line := "config reloaded: nothing to apply"
			if p == cli {
				line = "added=[] removed=[] changed=[] unchanged=1"
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
