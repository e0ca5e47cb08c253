package plugin

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"github.com/hopproxy/hop/pkg/config"
)

var quiet = slog.New(slog.DiscardHandler)

// listen serves h on a loopback port, as hopc hands it streams, and
// returns the address. The listener and h close with the test.
func listen(t *testing.T, h Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				h.Serve(c, c.RemoteAddr().String())
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		h.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// echoServer is a loopback TCP echo service.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != msg {
		t.Fatalf("echo: got %q, want %q", got, msg)
	}
}

func TestUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "echo.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	addr := listen(t, NewUnixSocket(path, quiet))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, "hello over a unix socket")

	// A missing socket closes the stream.
	addr2 := listen(t, NewUnixSocket(path+".missing", quiet))
	c2, err := net.Dial("tcp", addr2)
	if err != nil {
		t.Fatal(err)
	}
	c2.SetDeadline(time.Now().Add(10 * time.Second))
	if n, err := c2.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read from a stream to a missing socket: %d, %v; want EOF", n, err)
	}
}

func TestSOCKS5(t *testing.T) {
	backend := echoServer(t)
	for _, tc := range []struct {
		name       string
		user, pass string
		auth       *proxy.Auth
		ok         bool
	}{
		{"noauth", "", "", nil, true},
		{"userpass", "alice", "s3cret", &proxy.Auth{User: "alice", Password: "s3cret"}, true},
		{"wrong password", "alice", "s3cret", &proxy.Auth{User: "alice", Password: "nope"}, false},
		{"no credentials offered", "alice", "s3cret", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := listen(t, NewSOCKS5(tc.user, tc.pass, &net.Dialer{}, quiet))
			d, err := proxy.SOCKS5("tcp", addr, tc.auth, proxy.Direct)
			if err != nil {
				t.Fatal(err)
			}
			c, err := d.Dial("tcp", backend)
			if !tc.ok {
				if err == nil {
					c.Close()
					t.Fatal("dial through the proxy succeeded; want it refused")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			roundTrip(t, c, "hello through socks5")
		})
	}
}

func TestSOCKS5Replies(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr)
	ln.Close() // a port nobody listens on
	addr := listen(t, NewSOCKS5("", "", &net.Dialer{}, quiet))
	for _, tc := range []struct {
		name    string
		request []byte
		rep     byte
	}{
		{"refused", append([]byte{5, 1, 0, 1, 127, 0, 0, 1}, byte(closed.Port>>8), byte(closed.Port)), repRefused},
		{"bind", []byte{5, 2, 0, 1, 127, 0, 0, 1, 0, 80}, repCmdNotSupp},
		{"udp associate", []byte{5, 3, 0, 1, 127, 0, 0, 1, 0, 80}, repCmdNotSupp},
		{"bad address type", []byte{5, 1, 0, 9}, repAtypNotSupp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			c.Write([]byte{5, 1, 0})
			var m [2]byte
			if _, err := io.ReadFull(c, m[:]); err != nil || m != [2]byte{5, 0} {
				t.Fatalf("method choice %v, %v; want [5 0]", m, err)
			}
			c.Write(tc.request)
			var r [2]byte
			if _, err := io.ReadFull(c, r[:]); err != nil {
				t.Fatal(err)
			}
			if r[0] != 5 || r[1] != tc.rep {
				t.Fatalf("reply %v; want [5 %d]", r, tc.rep)
			}
		})
	}
	// A client offering only user/pass to a server without
	// authentication gets "no acceptable methods".
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte{5, 1, 2})
	var m [2]byte
	if _, err := io.ReadFull(c, m[:]); err != nil || m != [2]byte{5, 0xff} {
		t.Fatalf("method choice %v, %v; want [5 255]", m, err)
	}
}

// socksSeeds are handshakes of the table tests, for the fuzzer.
var socksSeeds = [][]byte{
	{5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80},
	{5, 1, 2, 1, 1, 'a', 1, 'b', 5, 1, 0, 3, 9, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't', 0, 80},
	{5, 1, 0, 5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 187},
	{5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1, 0, 80},
	{5, 1, 0, 5, 1, 0, 9},
	{5, 0},
	{4, 1, 0, 80, 127, 0, 0, 1, 0},
	{5, 1, 0, 5, 1, 0, 3, 0, 0, 80},
}

type fuzzRW struct {
	io.Reader
	out bytes.Buffer
}

func (f *fuzzRW) Write(b []byte) (int, error) { return f.out.Write(b) }

func FuzzSOCKSHandshake(f *testing.F) {
	for _, s := range socksSeeds {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, data []byte, auth bool) {
		user, pass := "", ""
		if auth {
			user, pass = "a", "b"
		}
		rw := &fuzzRW{Reader: bytes.NewReader(data)}
		req, err := socksHandshake(rw, user, pass)
		if err != nil {
			return
		}
		if req.host == "" {
			t.Fatalf("accepted a request without a host: %x", data)
		}
		if _, _, err := net.SplitHostPort(req.addr()); err != nil {
			t.Fatalf("accepted request %q does not split: %v", req.addr(), err)
		}
		if auth && !bytes.Contains(rw.out.Bytes(), []byte{authVersion, authStatusOK}) {
			t.Fatalf("accepted without a successful authentication: %x", data)
		}
	})
}

func TestSOCKSHandshakeSeeds(t *testing.T) {
	want := []string{"127.0.0.1:80", "localhost:80", "[::1]:443", "", "", "", "", ""}
	for i, s := range socksSeeds {
		user, pass := "", ""
		if len(s) > 2 && s[2] == 2 {
			user, pass = "a", "b"
		}
		req, err := socksHandshake(&fuzzRW{Reader: bytes.NewReader(s)}, user, pass)
		got := ""
		if err == nil {
			got = req.addr()
		}
		if got != want[i] {
			t.Errorf("seed %d: got %q (err %v), want %q", i, got, err, want[i])
		}
	}
}

func TestHTTPProxy(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "backend %s %s auth=%q", r.Method, r.URL.Path, r.Header.Get("Proxy-Authorization"))
	}))
	defer backend.Close()
	tlsBackend := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "tls backend ", r.URL.Path)
	}))
	defer tlsBackend.Close()

	addr := listen(t, NewHTTPProxy("bob", "pw", &net.Dialer{}, quiet))
	client := func(userinfo *url.Userinfo) *http.Client {
		tr := tlsBackend.Client().Transport.(*http.Transport).Clone()
		tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: addr, User: userinfo})
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	get := func(c *http.Client, u string) (int, string) {
		t.Helper()
		resp, err := c.Get(u)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	good := client(url.UserPassword("bob", "pw"))
	if code, body := get(good, backend.URL+"/a"); code != 200 || body != `backend GET /a auth=""` {
		t.Errorf("forwarded GET: %d %q", code, body)
	}
	if code, body := get(good, tlsBackend.URL+"/b"); code != 200 || body != "tls backend /b" {
		t.Errorf("CONNECT: %d %q", code, body)
	}
	if code, _ := get(client(url.UserPassword("bob", "wrong")), backend.URL+"/a"); code != http.StatusProxyAuthRequired {
		t.Errorf("wrong password: status %d, want 407", code)
	}
	if code, _ := get(client(nil), backend.URL+"/a"); code != http.StatusProxyAuthRequired {
		t.Errorf("no credentials: status %d, want 407", code)
	}
	if code, body := get(client(nil), tlsBackend.URL+"/b"); code != 0 || !strings.Contains(body, "Proxy Authentication Required") {
		t.Errorf("CONNECT without credentials: %d %q; want the tunnel refused with 407", code, body)
	}
	// A request that is not a proxy request (origin form) is refused.
	resp, err := http.Get("http://" + addr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusProxyAuthRequired {
		t.Errorf("origin-form request without credentials: %d", resp.StatusCode)
	}
	noauth := listen(t, NewHTTPProxy("", "", &net.Dialer{}, quiet))
	resp, err = http.Get("http://" + noauth + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("origin-form request: %d, want 400", resp.StatusCode)
	}
}

// TestHTTPProxyCloseEndsTunnels: Close ends an open CONNECT tunnel and
// waits for it.
func TestHTTPProxyCloseEndsTunnels(t *testing.T) {
	backend := echoServer(t)
	h := NewHTTPProxy("", "", &net.Dialer{}, quiet)
	a, b := net.Pipe()
	served := make(chan struct{})
	go func() { h.Serve(b, "192.0.2.1:1000"); close(served) }()
	a.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(a, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", backend, backend)
	br := bufio.NewReader(a)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	go a.Write([]byte("ping"))
	got := make([]byte, 4)
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "ping" {
		t.Fatalf("tunnel echo %q %v", got, err)
	}
	h.Close()
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve still running after Close")
	}
	if _, err := a.Read(got); err == nil {
		t.Fatal("tunnel still open after Close")
	}
	h.Close() // twice is fine
}

func TestStaticFile(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "www")
	os.Mkdir(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("file a"), 0o644)
	os.WriteFile(filepath.Join(base, "secret.txt"), []byte("TOPSECRET"), 0o644)
	if err := os.Symlink(filepath.Join(base, "secret.txt"), filepath.Join(dir, "link.txt")); err != nil {
		t.Fatal(err)
	}
	h, err := NewStaticFile(dir, "static", "u", "p", quiet)
	if err != nil {
		t.Fatal(err)
	}
	addr := listen(t, h)
	raw := func(path string, auth bool) (int, string) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		req := "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
		if auth {
			req += "Authorization: Basic dTpw\r\n" // u:p
		}
		io.WriteString(c, req+"\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := raw("/static/a.txt", true); code != 200 || body != "file a" {
		t.Errorf("file: %d %q", code, body)
	}
	if code, _ := raw("/static/a.txt", false); code != 401 {
		t.Errorf("without auth: %d, want 401", code)
	}
	if code, _ := raw("/a.txt", true); code != 404 {
		t.Errorf("outside stripPrefix: %d, want 404", code)
	}
	for _, p := range []string{"/static/../secret.txt", "/static/../../secret.txt", "/static/%2e%2e/secret.txt", "/static/..%2fsecret.txt", "/static/link.txt"} {
		if code, body := raw(p, true); code == 200 || strings.Contains(body, "TOPSECRET") {
			t.Errorf("%s escaped the directory: %d %q", p, code, body)
		}
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 and
// localhost, and returns the paths and a pool that trusts it.
func writeCert(t *testing.T) (crt, key string, pool *x509.CertPool) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hop test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(k)
	dir := t.TempDir()
	crt, key = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	os.WriteFile(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return crt, key, pool
}

// headerEcho answers with the request's Host, a header and the XFF.
var headerEcho = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "host=%s from=%s xff=%s proto=%s tls=%v", r.Host, r.Header.Get("X-From-Where"), r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"), r.TLS != nil)
})

func TestHTTPS2HTTP(t *testing.T) {
	backend := httptest.NewServer(headerEcho)
	defer backend.Close()
	crt, key, pool := writeCert(t)
	h, err := NewHTTPS2HTTP(config.PluginConfig{Type: config.PluginHTTPS2HTTP, LocalAddr: backend.Listener.Addr().String(),
		CrtPath: crt, KeyPath: key, HostHeaderRewrite: "app.internal", RequestHeaders: config.HeaderOps{Set: map[string]string{"x-from-where": "hop"}}}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	addr := listen(t, h)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "host=app.internal from=hop xff=127.0.0.1 proto=https tls=false"; string(b) != want {
		t.Errorf("got %q, want %q", b, want)
	}
	// Plain HTTP on the TLS port fails the handshake.
	if resp, err := http.Get("http://" + addr + "/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP was served by https2http")
		}
	}
	// Without crtPath and keyPath, a generated self-signed certificate.
	gen, err := NewHTTPS2HTTP(config.PluginConfig{Type: config.PluginHTTPS2HTTP, LocalAddr: backend.Listener.Addr().String()}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	genAddr := listen(t, gen)
	if _, err := c.Get("https://" + genAddr + "/"); err == nil {
		t.Error("the generated certificate verified against the test CA")
	}
	insecure := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err = insecure.Get("https://" + genAddr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(b), "host="+genAddr+" from= xff=127.0.0.1 proto=https") {
		t.Errorf("with the generated certificate: %q", b)
	}
	if _, err := NewHTTPS2HTTP(config.PluginConfig{CrtPath: key, KeyPath: key}, quiet); err == nil {
		t.Error("NewHTTPS2HTTP with a key as certificate: no error")
	}
}

func TestHTTP2HTTPS(t *testing.T) {
	backend := httptest.NewTLSServer(headerEcho)
	defer backend.Close()
	h := NewHTTP2HTTPS(config.PluginConfig{Type: config.PluginHTTP2HTTPS, LocalAddr: backend.Listener.Addr().String(),
		RequestHeaders: config.HeaderOps{Set: map[string]string{"X-From-Where": "hop"}}}, quiet)
	addr := listen(t, h)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "host=" + addr + " from=hop xff=127.0.0.1 proto=http tls=true"; string(b) != want {
		t.Errorf("got %q, want %q", b, want)
	}
}

func TestNew(t *testing.T) {
	if _, err := New(config.PluginConfig{Type: "nope"}, quiet); !errors.Is(err, ErrUnknownType) {
		t.Errorf("unknown type: %v", err)
	}
	h, err := New(config.PluginConfig{Type: config.PluginSOCKS5}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	a, b := net.Pipe()
	done := make(chan struct{})
	go func() { h.Serve(b, "x"); close(done) }()
	a.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := a.Read(make([]byte, 1)); err == nil {
		t.Error("a closed handler served a stream")
	}
	<-done
}

// FuzzProxyAuthorization: http_proxy's Proxy-Authorization decoding
// accepts exactly the configured credentials.
func FuzzProxyAuthorization(f *testing.F) {
	for _, s := range []string{"Basic Ym9iOnB3", "basic Ym9iOnB3", "Basic Ym9iOnB4", "Bearer x", "Basic", "Basic !!!", "Basic Ym9i", "Basic  Ym9iOnB3 "} {
		f.Add(s)
	}
	p := NewHTTPProxy("bob", "pw", &net.Dialer{}, quiet)
	defer p.Close()
	f.Fuzz(func(t *testing.T, h string) {
		r := &http.Request{Header: http.Header{"Proxy-Authorization": {h}}}
		if !p.proxyAuthOK(r) {
			return
		}
		scheme, cred, _ := strings.Cut(h, " ")
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
		if !strings.EqualFold(scheme, "basic") || err != nil || string(b) != "bob:pw" {
			t.Fatalf("accepted %q", h)
		}
	})
}

// TestCloseEndsStreams: Close of each handler ends a stream it is
// serving (a tunnel, an idle keep-alive HTTP connection) and Serve
// returns; Close twice is fine.
func TestCloseEndsStreams(t *testing.T) {
	backend := echoServer(t)
	sock := filepath.Join(t.TempDir(), "echo.sock")
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	go func() {
		for {
			c, err := ul.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	static, err := NewStaticFile(t.TempDir(), "", "", "", quiet)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(backend)
	for _, tc := range []struct {
		name  string
		h     Handler
		open  []byte // what the client sends
		reply string // a prefix of what it reads back before the close
	}{
		{"unix_domain_socket", NewUnixSocket(sock, quiet), []byte("ping"), "ping"},
		{"socks5", NewSOCKS5("", "", &net.Dialer{}, quiet), append(append([]byte{5, 1, 0, 5, 1, 0, 1}, net.ParseIP(host).To4()...), byte(mustAtoi(port)>>8), byte(mustAtoi(port))), "\x05\x00\x05\x00"},
		{"static_file", static, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "HTTP/1.1 200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := net.Pipe()
			defer a.Close()
			served := make(chan struct{})
			go func() { tc.h.Serve(b, "192.0.2.1:1"); close(served) }()
			a.SetDeadline(time.Now().Add(10 * time.Second))
			go a.Write(tc.open)
			got := make([]byte, len(tc.reply))
			if _, err := io.ReadFull(a, got); err != nil || string(got) != tc.reply {
				t.Fatalf("read %q, %v; want %q", got, err, tc.reply)
			}
			go io.Copy(io.Discard, a) // the rest of the reply
			tc.h.Close()
			select {
			case <-served:
			case <-time.After(10 * time.Second):
				t.Fatal("Serve still running after Close")
			}
			tc.h.Close()
		})
	}
}

func mustAtoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}
