package dashboard

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/dashboard/chromiumtest"
	"golang.org/x/net/html"
)

// budget is the virtual time the page gets: several 2 s polls.
var budget = chromiumtest.Options{Budget: 9 * time.Second}

var rateRE = regexp.MustCompile(`^[0-9.]+ (B|KiB|MiB|GiB)/s$`)

func TestHopsRendersBusyServer(t *testing.T) {
	f := busyHops()
	srv := f.start(t)
	d := parseDOM(t, chromiumtest.DumpDOM(t, srv.URL+"/", budget))

	if got := text(d.one(t, nil, "info-version")); got != "v0.10.0-test" {
		t.Errorf("server version shows %q", got)
	}
	if got := text(d.one(t, nil, "info-prometheus")); got != "on" {
		t.Errorf("prometheus shows %q", got)
	}
	laptop := d.one(t, nil, "client-row", "data-client-id", "laptop")
	if got := text(d.one(t, laptop, "client-state")); got != "online" {
		t.Errorf("laptop state %q, want online", got)
	}
	if got := text(d.one(t, laptop, "client-nat")); got != "EIM/EIF" {
		t.Errorf("laptop NAT %q", got)
	}
	if got := text(d.one(t, laptop, "client-rtt")); got != "1.3 ms" && got != "1.2 ms" {
		t.Errorf("laptop RTT %q", got)
	}
	if got := text(d.one(t, laptop, "client-uptime")); !strings.HasPrefix(got, "4") || !strings.Contains(got, "m") {
		t.Errorf("laptop uptime %q, want about 42m", got)
	}
	nas := d.one(t, nil, "client-row", "data-client-id", "nas")
	if got := text(d.one(t, nas, "client-state")); got != "gone" {
		t.Errorf("nas state %q, want gone", got)
	}
	if got := text(d.one(t, nas, "client-id")); got != "ops.nas" {
		t.Errorf("nas shown as %q, want ops.nas (user.clientID)", got)
	}
	for _, p := range []string{"ssh", "web"} {
		row := d.one(t, nil, "proxy-row", "data-proxy", p, "data-client-id", "laptop")
		if got := text(d.one(t, row, "proxy-state")); got != "online" {
			t.Errorf("proxy %s state %q", p, got)
		}
		tr := d.one(t, nil, "traffic-row", "data-proxy", p)
		for _, id := range []string{"rate-in", "rate-out"} {
			if got := text(d.one(t, tr, id)); !rateRE.MatchString(got) {
				t.Errorf("proxy %s %s = %q, want a rate", p, id, got)
			}
		}
	}
	// web moves twice the bytes of ssh per poll (i+1 steps).
	webOut := text(d.one(t, d.one(t, nil, "traffic-row", "data-proxy", "web"), "rate-out"))
	sshOut := text(d.one(t, d.one(t, nil, "traffic-row", "data-proxy", "ssh"), "rate-out"))
	if webOut == sshOut {
		t.Errorf("web and ssh show the same out rate %q; the fake moves web twice as fast", webOut)
	}
	spark := d.one(t, nil, "sparkline")
	if n := len(all(spark, func(n *html.Node) bool { return n.Data == "polyline" })); n != 2 {
		t.Errorf("sparkline has %d polylines, want in and out", n)
	}

	causes := map[string]string{}
	for _, r := range byTestID(d.root, "loss-cause-row") {
		c, _ := attr(r, "data-cause")
		causes[c] = text(d.one(t, r, "loss-count"))
	}
	want := map[string]string{"heartbeat timeout": "2", "connection reset by peer": "1", "EOF": "1"}
	for c, n := range want {
		if causes[c] != n {
			t.Errorf("losses by cause %v, want %s: %s", causes, c, n)
		}
	}
	if n := len(byTestID(d.root, "loss-mark")); n != 4 {
		t.Errorf("%d marks on the loss strip, want 4", n)
	}
	if n := len(byTestID(d.root, "loss-item")); n != 4 {
		t.Errorf("%d losses in the timeline, want 4", n)
	}

	cells := map[[2]string]string{
		{"EIM/EIF", "EIM/EIF"}:  "75% (4)",
		{"EIM/EIF", "EIM/APDF"}: "100% (6)",
		{"EDM", "EIM/APDF"}:     "20% (5)",
		{"EDM", "EIM/EIF"}:      "—",
	}
	for k, want := range cells {
		c := d.one(t, nil, "p2p-cell", "data-visitor-nat", k[0], "data-owner-nat", k[1])
		if got := text(c); got != want {
			t.Errorf("P2P cell %s x %s = %q, want %q", k[0], k[1], got, want)
		}
	}
	if len(byTestID(d.root, "error")) != 0 {
		t.Errorf("error banner shows: %q", text(d.one(t, nil, "errors")))
	}
	f.mu.Lock()
	polls := f.polls
	f.mu.Unlock()
	if polls < 3 {
		t.Errorf("the page fetched /api/proxies %d times in %v of virtual time, want a poll every 2 s", polls, budget.Budget)
	}

	if out := os.Getenv("HOP_DASHBOARD_SCREENSHOT"); out != "" {
		opt := chromiumtest.Options{Budget: 40 * time.Second}
		opt.Width, opt.Height = 1280, 900
		chromiumtest.Screenshot(t, srv.URL+"/", out, opt)
		t.Logf("screenshot written to %s", out)
	}
}

func TestHopsRendersEmptyServer(t *testing.T) {
	f := &fakeHops{info: serverInfo{Version: "v0.10.0-test", BindPort: 7000, StartedAt: time.Now()},
		clients: []clientRow{}, proxies: []proxyRow{}, p2p: []pairStats{}}
	d := parseDOM(t, chromiumtest.DumpDOM(t, f.start(t).URL+"/", budget))
	for _, id := range []string{"clients-empty", "traffic-empty", "losses-empty", "p2p-empty"} {
		if n := d.one(t, nil, id); text(n) == "" {
			t.Errorf("%s shows no text", id)
		}
	}
	if n := len(byTestID(d.root, "client-row")); n != 0 {
		t.Errorf("%d client rows for no clients", n)
	}
	if got := text(d.one(t, nil, "info-clients")); got != "0" {
		t.Errorf("clients connected %q, want 0", got)
	}
}

// TestHopsShowsAPIErrors: an endpoint that fails blanks only its panels
// and says which request failed and how.
func TestHopsShowsAPIErrors(t *testing.T) {
	f := busyHops()
	f.fail = map[string]int{"/api/proxies": http.StatusNotFound, "/api/p2p": http.StatusUnauthorized}
	d := parseDOM(t, chromiumtest.DumpDOM(t, f.start(t).URL+"/", budget))
	var msgs []string
	for _, n := range byTestID(d.root, "error") {
		msgs = append(msgs, text(n))
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"GET api/proxies: HTTP 404 404 page not found", "GET api/p2p: HTTP 401"} {
		if !strings.Contains(all, want) {
			t.Errorf("error banner %q, want it to say %q", all, want)
		}
	}
	d.one(t, nil, "traffic-error")
	d.one(t, nil, "p2p-error")
	// Clients still render, with proxy names from /api/clients.
	laptop := d.one(t, nil, "client-row", "data-client-id", "laptop")
	if got := text(d.one(t, laptop, "client-proxy-names")); got != "sshweb" {
		t.Errorf("laptop's proxies %q without /api/proxies, want ssh and web from /api/clients", got)
	}
	if n := len(byTestID(d.root, "loss-item")); n != 4 {
		t.Errorf("%d losses, want 4", n)
	}
}

func TestHopcRendersStatus(t *testing.T) {
	f := busyHopc()
	d := parseDOM(t, chromiumtest.DumpDOM(t, f.start(t).URL+"/", budget))
	if got := text(d.one(t, nil, "status-client-id")); got != "laptop" {
		t.Errorf("client ID %q", got)
	}
	if got := text(d.one(t, nil, "status-online")); got != "online" {
		t.Errorf("link %q, want online", got)
	}
	ssh := d.one(t, nil, "proxy-row", "data-proxy", "ssh")
	if got := text(d.one(t, ssh, "state")); got != "running" {
		t.Errorf("ssh state %q", got)
	}
	db := d.one(t, nil, "proxy-row", "data-proxy", "db")
	if got := text(d.one(t, db, "state")); got != "failed" {
		t.Errorf("db state %q", got)
	}
	if got := text(d.one(t, db, "proxy-error")); got != "port 6001 is in use on the server" {
		t.Errorf("db error %q", got)
	}
	if got := text(d.one(t, db, "proxy-next-retry")); !strings.Contains(got, "(in ") {
		t.Errorf("db next retry %q, want a time and how far ahead", got)
	}
	v := d.one(t, nil, "visitor-row", "data-visitor", "v")
	if got := text(d.one(t, v, "visitor-path")); got != "direct-udp" {
		t.Errorf("visitor path %q", got)
	}
	if got := text(d.one(t, v, "state")); got != "running" {
		t.Errorf("visitor state %q", got)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reloads != 0 {
		t.Errorf("the page reloaded the config %d times without a click", f.reloads)
	}
}

// TestHopsWithBasicAuth: with the credentials in the URL the browser
// sends them for the page and keeps sending them for its fetches.
func TestHopsWithBasicAuth(t *testing.T) {
	f := busyHops()
	f.user, f.password = "admin", "s3cret"
	srv := f.start(t)
	u := strings.Replace(srv.URL, "http://", "http://admin:s3cret@", 1) + "/"
	d := parseDOM(t, chromiumtest.DumpDOM(t, u, budget))
	for _, n := range byTestID(d.root, "error") {
		t.Errorf("error with basic auth: %s", text(n))
	}
	d.one(t, nil, "client-row", "data-client-id", "laptop")
	d.one(t, nil, "p2p-matrix")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.polls < 3 {
		t.Errorf("%d polls of /api/proxies with basic auth", f.polls)
	}
	t.Logf("%d requests without credentials refused (the browser's first try)", f.unauthorized)
}

// TestHopcReloadButton clicks Reload: the page posts api/reload once per
// click and shows the diff, or the server's error text.
func TestHopcReloadButton(t *testing.T) {
	f := busyHopc()
	srv := f.start(t)
	p, err := chromiumtest.Start(t).Open(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	const result = `document.querySelector("[data-testid=reload-result]")`
	wait := func(cond string) {
		t.Helper()
		if err := p.WaitFor(cond, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	wait(`document.querySelectorAll("[data-testid=proxy-row]").length === 2`)
	if err := p.Eval(`document.getElementById("reload").click()`, nil); err != nil {
		t.Fatal(err)
	}
	wait(result + `.dataset.outcome === "ok"`)
	var got string
	if err := p.Eval(result+`.textContent`, &got); err != nil {
		t.Fatal(err)
	}
	if want := "Reloaded: added proxy:web; removed none; changed none; 2 unchanged."; got != want {
		t.Errorf("after a reload the page says %q, want %q", got, want)
	}

	f.mu.Lock()
	f.reloadErr = `hopc.toml:7: proxy "web": localPort 0 is not a port (1-65535)`
	f.mu.Unlock()
	if err := p.Eval(`document.getElementById("reload").click()`, nil); err != nil {
		t.Fatal(err)
	}
	wait(result + `.dataset.outcome === "error"`)
	if err := p.Eval(result+`.textContent`, &got); err != nil {
		t.Fatal(err)
	}
	if want := `Reload refused, the running config stays: hopc.toml:7: proxy "web": localPort 0 is not a port (1-65535)`; got != want {
		t.Errorf("after a refused reload the page says %q, want %q", got, want)
	}
	noViolations(t, p)
	var disabled bool
	if err := p.Eval(`document.getElementById("reload").disabled`, &disabled); err != nil || disabled {
		t.Errorf("the Reload button stays disabled (%v)", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reloads != 2 {
		t.Errorf("%d POST api/reload for 2 clicks", f.reloads)
	}
}

func noViolations(t *testing.T, p *chromiumtest.Page) {
	t.Helper()
	v, err := p.CSPViolations()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range v {
		t.Errorf("Content-Security-Policy violation: %s", s)
	}
}

// TestHopsNoCSPViolations: the busy hops page renders every panel under
// its CSP without the browser blocking anything.
func TestHopsNoCSPViolations(t *testing.T) {
	srv := busyHops().start(t)
	p, err := chromiumtest.Start(t).Open(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(`document.querySelector("[data-testid=p2p-matrix]") && document.querySelectorAll("[data-testid=rate-in]").length === 2 && /\/s$/.test(document.querySelector("[data-testid=rate-in]").textContent)`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	noViolations(t, p)
}

// TestCSPViolationsAreSeen: the check above sees what the CSP blocks (an
// inline script and a style attribute on a page with the same header).
func TestCSPViolationsAreSeen(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", CSP)
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, `<!DOCTYPE html><p id="x" style="color:red">x</p><script>document.title="ran"</script>`)
	}))
	defer srv.Close()
	p, err := chromiumtest.Start(t).Open(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(`window.__cspViolations && window.__cspViolations.length >= 2`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	var title string
	if err := p.Eval("document.title", &title); err != nil || title == "ran" {
		t.Errorf("the inline script ran under the CSP (title %q, %v)", title, err)
	}
}

func TestHopcRendersOfflineWithoutProxies(t *testing.T) {
	f := &fakeHopc{status: clientStatus{ClientID: "laptop", Server: "127.0.0.1:7000", Online: false,
		LastError: "dial tcp 127.0.0.1:7000: connect: connection refused"}}
	d := parseDOM(t, chromiumtest.DumpDOM(t, f.start(t).URL+"/", budget))
	if got := text(d.one(t, nil, "status-online")); got != "offline" {
		t.Errorf("link %q, want offline", got)
	}
	if got := text(d.one(t, nil, "status-last-error")); got != f.status.LastError {
		t.Errorf("last error %q", got)
	}
	d.one(t, nil, "proxies-empty")
	d.one(t, nil, "visitors-empty")
}
