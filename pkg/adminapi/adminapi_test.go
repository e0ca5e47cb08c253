package adminapi

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/client"
	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/webserver"
)

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// serve runs the API with the given hooks behind basic auth and returns
// a Client of it.
func serve(t *testing.T, o Options) (*Client, config.WebServerConfig) {
	t.Helper()
	cfg := config.WebServerConfig{Addr: "127.0.0.1", Port: freePort(t), User: "admin", Password: "pw"}
	ws, err := webserver.Start(context.Background(), cfg, Handler(o), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, cfg
}

func TestAPI(t *testing.T) {
	file := filepath.Join(t.TempDir(), "hopc.toml")
	os.WriteFile(file, []byte("serverAddr = \"127.0.0.1\"\n"), 0o600)
	want := client.Status{ClientID: "c1", Server: "127.0.0.1:7000", Online: true,
		Proxies:  []client.ProxyStatus{{Name: "ssh", Type: "tcp", State: "failed", Error: "port 6000 is in use", NextRetry: "2026-01-01T00:00:00Z", RemoteAddr: ":6000", LocalAddr: "127.0.0.1:22"}},
		Visitors: []client.VisitorStatus{{Name: "v", Type: "xtcp", ServerName: "p", BindAddr: "127.0.0.1:9000", State: "running", Path: "direct-udp"}}}
	reloadErr := errors.New("hopc.toml:7: serverPort: 0 is out of range")
	stopped := make(chan struct{})
	c, cfg := serve(t, Options{
		Status:     func() client.Status { return want },
		ConfigFile: file,
		Reload: func(context.Context) (any, error) {
			if reloadErr != nil {
				return nil, reloadErr
			}
			return map[string]any{"added": []string{"proxy:web"}, "unchanged": 1}, nil
		},
		Stop: func() { close(stopped) },
	})
	ctx := context.Background()
	got, err := c.Status(ctx)
	if err != nil || got.ClientID != want.ClientID || len(got.Proxies) != 1 || !reflect.DeepEqual(got.Proxies[0], want.Proxies[0]) || got.Visitors[0] != want.Visitors[0] {
		t.Fatalf("Status = %+v, %v", got, err)
	}

	_, err = c.Reload(ctx)
	if !errors.Is(err, ErrAPI) || !strings.Contains(err.Error(), reloadErr.Error()) || !strings.Contains(err.Error(), "400") {
		t.Fatalf("failed reload: %v", err)
	}
	reloadErr = nil
	res, err := c.Reload(ctx)
	if err != nil || res["unchanged"] != float64(1) {
		t.Fatalf("reload = %v, %v", res, err)
	}

	req, _ := http.NewRequest("GET", c.base+"/api/config", nil)
	req.SetBasicAuth(cfg.User, cfg.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "serverAddr = \"127.0.0.1\"\n" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("config: %d %q", resp.StatusCode, body)
	}

	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
	default:
		t.Fatal("the Stop hook did not run")
	}

	// Wrong credentials: the error says so.
	bad := cfg
	bad.Password = "nope"
	bc, _ := NewClient(bad)
	if _, err := bc.Status(ctx); !errors.Is(err, ErrAPI) || !strings.Contains(err.Error(), "webServer.password") {
		t.Fatalf("wrong password: %v", err)
	}
}

func TestClientErrors(t *testing.T) {
	if _, err := NewClient(config.WebServerConfig{Addr: "127.0.0.1"}); !errors.Is(err, ErrOff) || !strings.Contains(err.Error(), "webServer.port = 0") {
		t.Fatalf("port 0: %v", err)
	}
	port := freePort(t) // nothing listens there now
	c, err := NewClient(config.WebServerConfig{Addr: "127.0.0.1", Port: port})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(context.Background()); !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "is hopc running with webServer.port = ") {
		t.Fatalf("unreachable: %v", err)
	}
}

func TestWriteStatus(t *testing.T) {
	var b bytes.Buffer
	WriteStatus(&b, client.Status{ClientID: "c1", Server: "h:7000", Online: true,
		Proxies: []client.ProxyStatus{
			{Name: "ssh", Type: "tcp", State: "running", RemoteAddr: ":6000"},
			{Name: "web-long-name", Type: "tcp", State: "failed", Error: "port 6001 is in use", NextRetry: "2026-01-01T00:00:00Z", RemoteAddr: ":6001"}},
		Visitors: []client.VisitorStatus{{Name: "v", Type: "xtcp", State: "running", Path: "relay"}}})
	want := `client c1, server h:7000: online
NAME           TYPE          STATE    REMOTE/PATH  ERROR                NEXT RETRY
ssh            tcp           running  :6000        -                    -
web-long-name  tcp           failed   :6001        port 6001 is in use  2026-01-01T00:00:00Z
v              xtcp visitor  running  relay        -                    -
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// With several nodes, a line each.
func TestWriteStatusNodes(t *testing.T) {
	var b bytes.Buffer
	WriteStatus(&b, client.Status{ClientID: "c1", Server: "a:7000,b:7000", Online: true, Nodes: []client.NodeStatus{
		{Name: "a:7000", Addr: "10.0.0.1:7000", Online: true},
		{Name: "b:7000", Addr: "b:7000", LastError: "dial b:7000: refused"},
		{Name: "c:7000", Addr: "c:7000", Stopped: true, LastError: "login: authentication failed"},
	}})
	want := "client c1, server a:7000,b:7000: online\n" +
		"node a:7000 (10.0.0.1:7000): online\n" +
		"node b:7000: offline (last error: dial b:7000: refused)\n" +
		"node c:7000: stopped (last error: login: authentication failed)\n"
	if !strings.HasPrefix(b.String(), want) {
		t.Fatalf("got\n%s\nwant it to start with\n%s", b.String(), want)
	}
}

// The "auto" heartbeat line, learning and learnt.
func TestWriteStatusHeartbeat(t *testing.T) {
	for _, c := range []struct {
		h    client.HeartbeatStatus
		want string
	}{
		{client.HeartbeatStatus{IntervalMs: 2000, Probes: 3}, "heartbeat auto: learning (3 probes so far); using 2s"},
		{client.HeartbeatStatus{IntervalMs: 16000, SurvivedMs: 35552, FailedMs: 42279, Learned: true}, "heartbeat auto: path forgets idle TCP after 35.552s-42.279s; using 16s"},
		{client.HeartbeatStatus{IntervalMs: 60000, SurvivedMs: 133333, Learned: true}, "heartbeat auto: path keeps idle TCP at least 2m13.333s; using 1m0s"},
	} {
		var b bytes.Buffer
		WriteStatus(&b, client.Status{ClientID: "c1", Server: "h:7000", Online: true, Heartbeat: &c.h})
		if lines := strings.Split(b.String(), "\n"); len(lines) < 2 || lines[1] != c.want {
			t.Errorf("got\n%s\nwant second line %q", b.String(), c.want)
		}
	}
}

// TestTLS: with webServer.tls set, the client trusts certFile as the root
// and checks the name of webServer.addr.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)

	cfg := config.WebServerConfig{Addr: "127.0.0.1", Port: freePort(t), User: "u", Password: "p",
		TLS: config.ServerTLSConfig{CertFile: certFile, KeyFile: keyFile}}
	ws, err := webserver.Start(context.Background(), cfg, Handler(Options{Status: func() client.Status { return client.Status{ClientID: "tls"} }}), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.Status(context.Background()); err != nil || st.ClientID != "tls" {
		t.Fatalf("over TLS: %+v, %v", st, err)
	}
	// Another certificate file as the root: refused.
	other := cfg
	other.TLS.CertFile = filepath.Join(dir, "other.crt")
	tmpl.SerialNumber = big.NewInt(2)
	der2, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	os.WriteFile(other.TLS.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der2}), 0o600)
	oc, err := NewClient(other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oc.Status(context.Background()); !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "must be the certificate") {
		t.Fatalf("with the wrong root: %v", err)
	}
}

func TestWriteStatusDomains(t *testing.T) {
	var b bytes.Buffer
	WriteStatus(&b, client.Status{ClientID: "c1", Server: "h:7000", Online: true,
		Proxies: []client.ProxyStatus{{Name: "web", Type: "http", State: "running", Domains: []string{"a.example.com", "web.example.com"}}}})
	want := `client c1, server h:7000: online
NAME  TYPE  STATE    REMOTE/PATH                    ERROR  NEXT RETRY
web   http  running  a.example.com,web.example.com  -      -
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// TestWriteStatusKeepalive: a P2P visitor's path shows its keepalive
// (p2plife: keepaliveInterval "auto").
func TestWriteStatusKeepalive(t *testing.T) {
	var b bytes.Buffer
	WriteStatus(&b, client.Status{ClientID: "c1", Server: "h:7000", Online: true,
		Visitors: []client.VisitorStatus{
			{Name: "v", Type: "xtcp", State: "running", Path: "direct-udp", Keepalive: "auto 2s (NAT forgets idle UDP after ~5.3s)"},
			{Name: "w", Type: "xtcp", State: "running", Keepalive: "10s"}}})
	want := `client c1, server h:7000: online
NAME  TYPE          STATE    REMOTE/PATH                                                       ERROR  NEXT RETRY
v     xtcp visitor  running  direct-udp, keepalive auto 2s (NAT forgets idle UDP after ~5.3s)  -      -
w     xtcp visitor  running  -                                                                 -      -
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}
