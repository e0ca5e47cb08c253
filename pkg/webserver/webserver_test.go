package webserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/config"
)

func hello() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
}

func start(t *testing.T, cfg config.WebServerConfig) *Server {
	t.Helper()
	cfg.Addr = "127.0.0.1"
	cfg.Port = freePort(t)
	s, err := Start(context.Background(), cfg, hello(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func get(t *testing.T, c *http.Client, url, user, pass string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if user != "" || pass != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestBasicAuth(t *testing.T) {
	s := start(t, config.WebServerConfig{User: "admin", Password: "s3cret"})
	url := "http://" + s.Addr().String() + "/api/x"
	for _, tc := range []struct {
		user, pass string
		want       int
	}{{"", "", 401}, {"admin", "wrong", 401}, {"root", "s3cret", 401}, {"admin", "s3cret", 200}} {
		code, body, h := get(t, http.DefaultClient, url, tc.user, tc.pass)
		if code != tc.want {
			t.Errorf("%q/%q: status %d, want %d", tc.user, tc.pass, code, tc.want)
		}
		if code == 401 && h.Get("WWW-Authenticate") != `Basic realm="hop"` {
			t.Errorf("401 without the challenge: WWW-Authenticate %q", h.Get("WWW-Authenticate"))
		}
		if code == 200 && body != "hello" {
			t.Errorf("body %q", body)
		}
	}
}

func TestOpenWithoutCredentials(t *testing.T) {
	s := start(t, config.WebServerConfig{})
	if code, _, _ := get(t, http.DefaultClient, "http://"+s.Addr().String()+"/", "", ""); code != 200 {
		t.Fatalf("status %d, want 200", code)
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hop test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "web.crt"), filepath.Join(dir, "web.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	c, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return certFile, keyFile, pool
}

func TestTLS(t *testing.T) {
	cert, key, pool := writeCert(t, t.TempDir())
	s := start(t, config.WebServerConfig{User: "a", Password: "b", TLS: config.ServerTLSConfig{CertFile: cert, KeyFile: key}})
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer c.CloseIdleConnections()
	if code, body, _ := get(t, c, "https://"+s.Addr().String()+"/", "a", "b"); code != 200 || body != "hello" {
		t.Fatalf("over TLS: %d %q", code, body)
	}
	// Plain HTTP to the TLS port does not reach the handler.
	if code, _, _ := get(t, http.DefaultClient, "http://"+s.Addr().String()+"/", "a", "b"); code == 200 {
		t.Fatalf("plain HTTP to the TLS port got 200")
	}
}

func TestBadCert(t *testing.T) {
	dir := t.TempDir()
	_, key, _ := writeCert(t, dir)
	bad := filepath.Join(dir, "bad.crt")
	os.WriteFile(bad, []byte("not a certificate"), 0o600)
	cfg := config.WebServerConfig{Addr: "127.0.0.1", Port: freePort(t), TLS: config.ServerTLSConfig{CertFile: bad, KeyFile: key}}
	s, err := Start(context.Background(), cfg, hello(), slog.New(slog.DiscardHandler))
	if err == nil {
		s.Close()
		t.Fatal("Start with a bad certificate file succeeded")
	}
	if !errors.Is(err, ErrBadCert) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("error %q: want ErrBadCert naming %s", err, bad)
	}
}

func TestCloseIdempotentAndOnContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cfg := config.WebServerConfig{Addr: "127.0.0.1", Port: freePort(t)}
	s, err := Start(ctx, cfg, hello(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	<-s.done // closed by the context
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", s.Addr().String()); err == nil {
		c.Close()
		t.Fatal("still listening after Close")
	}
}
