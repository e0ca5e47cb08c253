package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// A real Prometheus server scrapes hops' /metrics every second; the bytes
// sent through a tcp proxy show up in its queries, and every hop_ series
// carries hops' nodeName as the label node (also in /api/serverinfo).
func TestPrometheusScrapesHops(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("HOP_REQUIRE_NETLAB") == "1" {
			t.Fatal("prometheus not found and HOP_REQUIRE_NETLAB=1: apt-get install prometheus")
		}
		t.Skip("prometheus not found (apt-get install prometheus); set HOP_REQUIRE_NETLAB=1 to make this a failure")
	}
	webPort, promPort := freePort(t), freePort(t)
	echoPort, remote := tcpService(t, echo), freePort(t)
	const node = "e2e node/1" // any printable characters
	_, _, _ = setup(t, fmt.Sprintf("nodeName = %q\nenablePrometheus = true\n[webServer]\nport = %d\n", node, webPort), tcpProxy("echo", echoPort, remote))
	waitProxy(t, loop(remote), ready)
	var info struct {
		NodeName string `json:"nodeName"`
	}
	if err := apiGet("http://"+loop(webPort)+"/api/serverinfo", "", "", &info); err != nil || info.NodeName != node {
		t.Fatalf("/api/serverinfo nodeName = %q (%v), want %q", info.NodeName, err, node)
	}

	dir := t.TempDir()
	promCfg := filepath.Join(dir, "prometheus.yml")
	writeFile(t, promCfg, fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: hops
    static_configs:
      - targets: ["127.0.0.1:%d"]
`, webPort))
	cmd := exec.Command(promBin, "--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+loop(promPort), "--log.level=warn")
	launch(t, "prometheus", cmd, func(c *exec.Cmd) (func() error, error) {
		if err := c.Start(); err != nil {
			return nil, err
		}
		return c.Wait, nil
	}) // stopped by PID when the test ends

	// 5 MB through the proxy and back.
	const n = 5 << 20
	c, err := net.Dial("tcp", loop(remote))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	sent := make(chan error, 1)
	go func() { sent <- pattern(c, n, 7) }()
	if _, err := io.CopyN(io.Discard, c, n); err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}

	// results runs an instant query and returns the values of its
	// series; ok is false when Prometheus did not answer it.
	results := func(q string) (vals []float64, ok bool) {
		resp, err := http.Get("http://" + loop(promPort) + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return nil, false
		}
		defer resp.Body.Close()
		var r struct {
			Status string `json:"status"`
			Data   struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if json.NewDecoder(resp.Body).Decode(&r) != nil || r.Status != "success" {
			return nil, false
		}
		for _, res := range r.Data.Result {
			s, _ := res.Value[1].(string)
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return nil, false
			}
			vals = append(vals, v)
		}
		return vals, true
	}
	// query is the value of a query with exactly one series.
	query := func(q string) (float64, bool) {
		vals, ok := results(q)
		if !ok || len(vals) != 1 {
			return 0, false
		}
		return vals[0], true
	}
	eventually(t, 90*time.Second, "Prometheus to see the 5 MB both ways", func() bool {
		in, ok1 := query(`hop_proxy_received_bytes_total{proxy="echo",node="` + node + `"}`)
		out, ok2 := query(`hop_proxy_sent_bytes_total{proxy="echo",node="` + node + `"}`)
		return ok1 && ok2 && in >= n && out >= n
	})
	if v, ok := query(`hop_clients_connected{node="` + node + `"}`); !ok || v != 1 {
		t.Errorf("hop_clients_connected in Prometheus = %v (%v), want 1", v, ok)
	}
	// Every hop_ series has the node label: some series with it, none
	// without it or with another value.
	if v, ok := query(`count({job="hops",__name__=~"hop_.+",node="` + node + `"})`); !ok || v < 10 {
		t.Errorf("hop_ series with node=%q: %v (%v), want 10 or more", node, v, ok)
	}
	if vals, ok := results(`{job="hops",__name__=~"hop_.+",node!="` + node + `"}`); !ok || len(vals) != 0 {
		t.Errorf("hop_ series without node=%q: %d (%v), want none", node, len(vals), ok)
	}
	if v, ok := query(`up{job="hops"}`); !ok || v != 1 {
		t.Errorf(`up{job="hops"} = %v (%v), want 1`, v, ok)
	}
}
