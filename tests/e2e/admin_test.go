package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestAdminAPI: hopc's admin API with a login. hopc status shows a proxy
// running and one whose remote port another program holds failed with the
// server's reason and the next retry, then running once the port is free;
// a request without credentials gets 401; hops' API needs them too;
// hopc stop makes hopc exit 0.
func TestAdminAPI(t *testing.T) {
	port, webPort, adminPort := freePort(t), freePort(t), freePort(t)
	hops := start(t, "hops", serverConfig(port, fmt.Sprintf("[webServer]\nport = %d\nuser = \"admin\"\npassword = \"hops-pw\"\n", webPort)))
	svc := tcpService(t, echo)
	okRemote, busyRemote := freePort(t), freePort(t)
	holder, err := net.Listen("tcp", loop(busyRemote))
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	cfgPath := writeConfig(t, "hopc", clientConfig(port, fmt.Sprintf("[webServer]\nport = %d\nuser = \"admin\"\npassword = \"hopc-pw\"\n", adminPort)+
		tcpProxy("ok", svc, okRemote)+tcpProxy("busy", svc, busyRemote)))
	hopc := launch(t, "hopc", exec.Command(filepath.Join(binDir, "hopc"), "-c", cfgPath), func(c *exec.Cmd) (func() error, error) {
		if err := c.Start(); err != nil {
			return nil, err
		}
		return c.Wait, nil
	})
	waitProxy(t, loop(okRemote), 20*time.Second)

	row := func(out, name string) string {
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, name+" ") {
				return l
			}
		}
		return ""
	}
	var out string
	eventually(t, 20*time.Second, "hopc status: ok running, busy failed", func() bool {
		var code int
		out, code = runBin(t, "hopc", "status", "-c", cfgPath)
		return code == 0 && strings.Contains(row(out, "ok"), " running ") && strings.Contains(row(out, "busy"), " failed ")
	})
	if !strings.Contains(out, "NAME") || !strings.Contains(out, "NEXT RETRY") || !strings.Contains(row(out, "ok"), fmt.Sprintf(":%d", okRemote)) {
		t.Errorf("status table:\n%s", out)
	}
	busy := row(out, "busy")
	if !regexp.MustCompile(`failed +:\d+ +.*\S.* +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`).MatchString(busy) {
		t.Errorf("busy row has no reason and next retry: %q", busy)
	}

	// Without credentials (or with wrong ones): 401, on both sides.
	for _, url := range []string{fmt.Sprintf("http://127.0.0.1:%d/api/status", adminPort), fmt.Sprintf("http://127.0.0.1:%d/api/clients", webPort)} {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s without credentials: %d (WWW-Authenticate %q), want 401", url, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/api/clients", webPort), nil)
	req.SetBasicAuth("admin", "hops-pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("hops /api/clients with credentials: %d", resp.StatusCode)
	}

	holder.Close()
	eventually(t, 30*time.Second, "busy running once its port is free", func() bool {
		out, code := runBin(t, "hopc", "status", "-c", cfgPath)
		return code == 0 && strings.Contains(row(out, "busy"), " running ")
	})
	waitProxy(t, loop(busyRemote), 10*time.Second)

	// reload of an invalid file: refused with its file:line error, and
	// the old config runs on.
	good, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfgPath, "bogus = 1\n"+string(good))
	// The CLI reads webServer from the file too, and refuses the invalid
	// file itself; the API, asked directly, gives the running hopc's answer.
	req, _ = http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d/api/reload", adminPort), nil)
	req.SetBasicAuth("admin", "hopc-pw")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !regexp.MustCompile(`"error":"[^"]*hopc.toml:\d+: bogus: unknown key`).Match(body) {
		t.Errorf("reload of an invalid file: %d %s", resp.StatusCode, body)
	}
	writeFile(t, cfgPath, string(good))
	if out, code := runBin(t, "hopc", "status", "-c", cfgPath); code != 0 || !strings.Contains(row(out, "ok"), " running ") {
		t.Errorf("status after a refused reload: exit %d\n%s", code, out)
	}

	// hopc reload applies a file without busy; status follows.
	writeFile(t, cfgPath, strings.Replace(string(good), tcpProxy("busy", svc, busyRemote), "", 1))
	if out, code := runBin(t, "hopc", "reload", "-c", cfgPath); code != 0 || !strings.Contains(out, `"removed":["proxy:busy"]`) || !strings.Contains(out, `"unchanged":1`) {
		t.Errorf("hopc reload: exit %d: %s", code, out)
	}
	if out, code := runBin(t, "hopc", "status", "-c", cfgPath); code != 0 || row(out, "busy") != "" || !strings.Contains(row(out, "ok"), " running ") {
		t.Errorf("status after the reload: exit %d\n%s", code, out)
	}

	if out, code := runBin(t, "hopc", "stop", "-c", cfgPath); code != 0 {
		t.Fatalf("hopc stop: exit %d: %s", code, out)
	}
	if code := hopc.waitExit(20 * time.Second); code != 0 {
		t.Fatalf("hopc exited %d after hopc stop", code)
	}
	out, code := runBin(t, "hopc", "status", "-c", cfgPath)
	if code != 1 || !strings.Contains(out, fmt.Sprintf("is hopc running with webServer.port = %d?", adminPort)) {
		t.Errorf("status of a stopped hopc: exit %d: %s", code, out)
	}
	if code := hops.interrupt(20 * time.Second); code != 0 {
		t.Errorf("hops exit %d", code)
	}
}

// TestAdminAPIRefusals: neither side starts with webServer.addr = "0.0.0.0"
// and no password; hopc status says when webServer.port is 0.
func TestAdminAPIRefusals(t *testing.T) {
	for _, bin := range []string{"hops", "hopc"} {
		var cfg string
		if bin == "hops" {
			cfg = serverConfig(freePort(t), "[webServer]\naddr = \"0.0.0.0\"\nport = 7500\n")
		} else {
			cfg = clientConfig(freePort(t), "[webServer]\naddr = \"0.0.0.0\"\nport = 7400\n")
		}
		p := start(t, bin, cfg)
		if code := p.waitExit(20 * time.Second); code != 1 {
			t.Errorf("%s with an open webServer on 0.0.0.0: exit %d, want 1", bin, code)
		}
		if !strings.Contains(p.out.String(), `webServer.addr: "0.0.0.0" is not a loopback address`) || !strings.Contains(p.out.String(), "webServer.password") {
			t.Errorf("%s output:\n%s", bin, p.out.String())
		}
	}
	path := writeConfig(t, "hopc", clientConfig(freePort(t), ""))
	out, code := runBin(t, "hopc", "status", "-c", path)
	if code != 1 || !strings.Contains(out, "webServer.port = 0") {
		t.Errorf("status with webServer.port = 0: exit %d: %s", code, out)
	}
}
