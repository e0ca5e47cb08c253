package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/dashboard/chromiumtest"
)

// apiGet decodes the JSON answer of GET url into v.
func apiGet(url, user, password string, v any) error {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return err
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// waitAPI polls check until it returns nil, failing the test with its
// last error after d.
func waitAPI(t *testing.T, d time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last: %v", d, what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The hops dashboard, rendered by headless Chromium from the real
// server's API (with basic auth, which the page's fetches carry), shows
// the connected client as online with its two proxies.
func TestDashboardShowsClientAndProxies(t *testing.T) {
	chromiumtest.Path(t) // skip (or fail under HOP_REQUIRE_NETLAB=1) before starting anything
	srvPort, web := freePort(t), freePort(t)
	start(t, "hops", serverConfig(srvPort, fmt.Sprintf("[webServer]\nport = %d\nuser = \"admin\"\npassword = \"dash-pw\"\n", web)))
	waitListening(t, loop(srvPort), ready)
	r1, r2 := freePort(t), freePort(t)
	proxies := tcpProxy("dash-ssh", tcpService(t, echo), r1) + tcpProxy("dash-web", tcpService(t, echo), r2)
	start(t, "hopc", withID(clientConfig(srvPort, proxies), "dash-laptop"))
	waitProxy(t, loop(r1), ready)
	waitProxy(t, loop(r2), ready)

	base := "http://" + loop(web) + "/"
	// The API the page reads must show the client and some traffic.
	waitAPI(t, ready, "GET /api/clients and /api/proxies (as the issue-10 contract says) to show dash-laptop online with traffic", func() error {
		var clients []struct {
			ClientID string `json:"clientID"`
			Online   bool   `json:"online"`
		}
		if err := apiGet(base+"api/clients", "admin", "dash-pw", &clients); err != nil {
			return err
		}
		online := false
		for _, c := range clients {
			online = online || c.ClientID == "dash-laptop" && c.Online
		}
		if !online {
			return fmt.Errorf("clients %+v: dash-laptop is not online", clients)
		}
		var ps []struct {
			Name     string `json:"name"`
			ClientID string `json:"clientID"`
			BytesIn  int64  `json:"bytesIn"`
		}
		if err := apiGet(base+"api/proxies", "admin", "dash-pw", &ps); err != nil {
			return err
		}
		with := 0
		for _, p := range ps {
			if p.ClientID == "dash-laptop" && strings.HasPrefix(p.Name, "dash-") && p.BytesIn > 0 {
				with++
			}
		}
		if with != 2 {
			return fmt.Errorf("proxies %+v: want dash-ssh and dash-web of dash-laptop with bytesIn > 0", ps)
		}
		return nil
	})

	page := chromiumtest.DumpDOM(t, "http://admin:dash-pw@"+loop(web)+"/", chromiumtest.Options{Budget: 5 * time.Second})
	root, err := chromiumtest.ParseDOM(page)
	if err != nil {
		t.Fatal(err)
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\nrendered DOM:\n%s", append(args, page)...)
	}
	for _, e := range chromiumtest.ByTestID(root, "error") {
		fail("the dashboard shows an error: %s", chromiumtest.Text(e))
	}
	rows := chromiumtest.ByTestID(root, "client-row", "data-client-id", "dash-laptop")
	if len(rows) != 1 {
		fail("%d rows for client dash-laptop, want 1", len(rows))
	}
	if st := chromiumtest.ByTestID(rows[0], "client-state"); len(st) != 1 || chromiumtest.Text(st[0]) != "online" {
		fail("client dash-laptop is not shown online")
	}
	for _, name := range []string{"dash-ssh", "dash-web"} {
		prow := chromiumtest.ByTestID(root, "proxy-row", "data-proxy", name, "data-client-id", "dash-laptop")
		if len(prow) != 1 {
			fail("%d rows for proxy %s of dash-laptop, want 1", len(prow), name)
		}
		if b := chromiumtest.ByTestID(prow[0], "proxy-bytes-in"); len(b) != 1 || chromiumtest.Text(b[0]) == "0 B" || chromiumtest.Text(b[0]) == "—" {
			fail("proxy %s shows no bytes in after an echo through it", name)
		}
		if len(chromiumtest.ByTestID(root, "traffic-row", "data-proxy", name)) != 1 {
			fail("proxy %s has no row in the traffic panel", name)
		}
	}
	if v := chromiumtest.ByTestID(root, "info-clients"); len(v) != 1 || chromiumtest.Text(v[0]) != "1" {
		fail("server info does not say 1 client connected")
	}
}

// The hopc dashboard, from hopc's own admin API, shows both proxies
// running.
func TestHopcDashboardShowsProxies(t *testing.T) {
	chromiumtest.Path(t)
	srvPort, admin := freePort(t), freePort(t)
	start(t, "hops", serverConfig(srvPort, ""))
	waitListening(t, loop(srvPort), ready)
	r1, r2 := freePort(t), freePort(t)
	proxies := tcpProxy("dash-ssh", tcpService(t, echo), r1) + tcpProxy("dash-web", tcpService(t, echo), r2)
	start(t, "hopc", withID(clientConfig(srvPort, fmt.Sprintf("[webServer]\nport = %d\n", admin)+proxies), "dash-laptop"))
	waitProxy(t, loop(r1), ready)
	waitProxy(t, loop(r2), ready)
	base := "http://" + loop(admin) + "/"
	waitAPI(t, ready, "GET /api/status of hopc to show both proxies running", func() error {
		var st struct {
			Online  bool `json:"online"`
			Proxies []struct {
				Name  string `json:"name"`
				State string `json:"state"`
			} `json:"proxies"`
		}
		if err := apiGet(base+"api/status", "", "", &st); err != nil {
			return err
		}
		n := 0
		for _, p := range st.Proxies {
			if p.State == "running" {
				n++
			}
		}
		if !st.Online || n != 2 {
			return fmt.Errorf("status %+v: want online with 2 proxies running", st)
		}
		return nil
	})

	page := chromiumtest.DumpDOM(t, base, chromiumtest.Options{Budget: 5 * time.Second})
	root, err := chromiumtest.ParseDOM(page)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"dash-ssh", "dash-web"} {
		rows := chromiumtest.ByTestID(root, "proxy-row", "data-proxy", name, "data-state", "running")
		if len(rows) != 1 {
			t.Fatalf("the hopc dashboard does not show proxy %s running\nrendered DOM:\n%s", name, page)
		}
	}
	if st := chromiumtest.ByTestID(root, "status-client-id"); len(st) != 1 || chromiumtest.Text(st[0]) != "dash-laptop" {
		t.Fatalf("the hopc dashboard does not show client ID dash-laptop\nrendered DOM:\n%s", page)
	}
}
