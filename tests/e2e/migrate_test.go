package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// migrateBin runs "bin migrate path" and returns what it printed on
// stdout (the hop config), failing on an error.
func migrateBin(t *testing.T, bin, path string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, bin), "migrate", path)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s migrate %s: %v\n%s", bin, path, err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "converted") {
		t.Errorf("%s migrate printed no summary on stderr: %q", bin, stderr.String())
	}
	return stdout.String()
}

// TestMigrateFromFrp converts an frps and an frpc file with the real
// binaries, checks the results with verify, and runs them: a tcp proxy of
// the frpc file works through hop.
func TestMigrateFromFrp(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("FRP_TOKEN", "migrate-e2e-token-0123456789")
	bindPort, remotePort, local := freePort(t), freePort(t), tcpService(t, echo)
	frps := filepath.Join(dir, "frps.toml")
	writeFile(t, frps, fmt.Sprintf(`bindAddr = "127.0.0.1"
bindPort = %d
kcpBindPort = %d
proxyBindAddr = "127.0.0.1"
auth.method = "token"
auth.token = "{{ .Envs.FRP_TOKEN }}"
transport.heartbeatTimeout = 90
transport.tls.force = true
allowPorts = [{ single = %d }]
`, bindPort, bindPort, remotePort))
	frpc := filepath.Join(dir, "frpc.yaml")
	writeFile(t, frpc, fmt.Sprintf(`serverAddr: 127.0.0.1
serverPort: %d
loginFailExit: false
auth:
  token: "{{ .Envs.FRP_TOKEN }}"
transport:
  heartbeatInterval: 10
  poolCount: 5
proxies:
  - name: echo
    type: tcp
    localIP: 127.0.0.1
    localPort: %d
    remotePort: %d
    transport:
      useEncryption: true
`, bindPort, local, remotePort))

	// tests run many servers at once: no second STUN port (frp has none
	// to convert).
	hops := migrateBin(t, "hops", frps) + "\n[p2p]\nstunAltPort = 0\n"
	hopc := migrateBin(t, "hopc", frpc)
	for _, w := range []string{"# kcpBindPort (line 3) not converted", `token = "${FRP_TOKEN}"`, `timeout = "90s"`} {
		if !strings.Contains(hops, w) {
			t.Errorf("hops migrate output lacks %q:\n%s", w, hops)
		}
	}
	if !strings.Contains(hopc, "# proxies[0].transport.useEncryption (line 16) not converted") {
		t.Errorf("hopc migrate output lacks the useEncryption comment:\n%s", hopc)
	}
	for bin, cfg := range map[string]string{"hops": hops, "hopc": hopc} {
		if out, code := runBin(t, bin, "verify", "-c", writeConfig(t, bin, cfg)); code != 0 || !strings.Contains(out, "OK") {
			t.Fatalf("%s verify of the migrated file: exit %d\n%s\n%s", bin, code, out, cfg)
		}
	}
	s := start(t, "hops", hops)
	waitListening(t, loop(bindPort), 20*time.Second)
	c := start(t, "hopc", hopc)
	waitProxy(t, loop(remotePort), 30*time.Second)
	if code := c.interrupt(20 * time.Second); code != 0 {
		t.Errorf("hopc exited %d on SIGINT", code)
	}
	if code := s.interrupt(20 * time.Second); code != 0 {
		t.Errorf("hops exited %d on SIGINT", code)
	}
}
