package client

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/hopproxy/hop/pkg/config"
)

func TestCheckLocal(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ok" {
			http.Error(w, "no", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p := config.DefaultProxy(config.ProxyTCP)
	p.LocalIP = host
	p.LocalPort, _ = strconv.Atoi(port)
	p.HealthCheck = config.ProxyHealthCheck{Type: "http", Path: "/ok", TimeoutSeconds: 2, MaxFailed: 1, IntervalSeconds: 1}
	if err := checkLocal(context.Background(), p); err != nil {
		t.Fatalf("http /ok: %v", err)
	}
	p.HealthCheck.Path = "/down"
	if err := checkLocal(context.Background(), p); err == nil {
		t.Fatal("http /down (503) passed")
	}
	p.HealthCheck = config.ProxyHealthCheck{Type: "tcp", TimeoutSeconds: 2, MaxFailed: 1, IntervalSeconds: 1}
	if err := checkLocal(context.Background(), p); err != nil {
		t.Fatalf("tcp: %v", err)
	}
	srv.Close()
	if err := checkLocal(context.Background(), p); err == nil {
		t.Fatal("tcp to a closed port passed")
	}
	p.HealthCheck.Type = "http"
	p.HealthCheck.Path = "/ok"
	if err := checkLocal(context.Background(), p); err == nil {
		t.Fatal("http to a closed port passed")
	}
}
