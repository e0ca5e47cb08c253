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
// sent through a tcp proxy show up in its queries.
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
	_, _, _ = setup(t, fmt.Sprintf("enablePrometheus = true\n[webServer]\nport = %d\n", webPort), tcpProxy("echo", echoPort, remote))
	waitProxy(t, loop(remote), ready)

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

	query := func(q string) (float64, bool) {
		resp, err := http.Get("http://" + loop(promPort) + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return 0, false
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
		if json.NewDecoder(resp.Body).Decode(&r) != nil || r.Status != "success" || len(r.Data.Result) != 1 {
			return 0, false
		}
		s, _ := r.Data.Result[0].Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		return v, err == nil
	}
	eventually(t, 90*time.Second, "Prometheus to see the 5 MB both ways", func() bool {
		in, ok1 := query(`hop_proxy_received_bytes_total{proxy="echo"}`)
		out, ok2 := query(`hop_proxy_sent_bytes_total{proxy="echo"}`)
		return ok1 && ok2 && in >= n && out >= n
	})
	if v, ok := query(`hop_clients_connected`); !ok || v != 1 {
		t.Errorf("hop_clients_connected in Prometheus = %v (%v), want 1", v, ok)
	}
	if v, ok := query(`up{job="hops"}`); !ok || v != 1 {
		t.Errorf(`up{job="hops"} = %v (%v), want 1`, v, ok)
	}
}
