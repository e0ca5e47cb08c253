package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// webService serves h over HTTP on a loopback port until the test ends.
func webService(t *testing.T, h http.Handler) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// seen is what the info backend reports about a request.
type seen struct {
	Tag, Host, Path string
	Header          http.Header
}

// infoService answers every request with a JSON seen tagged tag.
func infoService(t *testing.T, tag string) int {
	return webService(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(seen{Tag: tag, Host: r.Host, Path: r.URL.Path, Header: r.Header})
	}))
}

// vhostClient is an HTTP client whose every connection goes to addr,
// whatever the host in the URL: domains never reach DNS.
func vhostClient(addr string, roots *x509.CertPool) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		DialContext:     func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) },
		TLSClientConfig: &tls.Config{RootCAs: roots},
	}}
}

func httpProxy(name string, port int, extra string) string {
	return fmt.Sprintf("\n[[proxies]]\nname = %q\ntype = \"http\"\nlocalPort = %d\n%s\n", name, port, extra)
}

func getSeen(t *testing.T, c *http.Client, req *http.Request) (seen, *http.Response) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	var s seen
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(body, &s); err != nil {
			t.Fatalf("%s: %v in %q", req.URL, err, body)
		}
	}
	return s, resp
}

func newReq(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestVhostHTTP(t *testing.T) {
	srvPort, httpPort := freePort(t), freePort(t)
	page := filepath.Join(t.TempDir(), "404.html")
	writeFile(t, page, "<h1>nothing here (custom)</h1>\n")
	web := freePort(t)
	srv := start(t, "hops", serverConfig(srvPort, fmt.Sprintf("vhostHTTPPort = %d\nsubDomainHost = \"hop.test\"\ncustom404Page = %q\n[webServer]\nport = %d\nuser = \"admin\"\npassword = \"vhost-pw\"\n", httpPort, page, web)))
	waitListening(t, loop(srvPort), ready)

	const size = 20 << 20
	bulk := webService(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("X-Upload-Sha256", hex.EncodeToString(h.Sum(nil)))
		w.Header().Set("X-Upload-Bytes", strconv.FormatInt(n, 10))
		pattern(w, size, 7)
	}))
	ws := webService(t, websocket.Handler(func(c *websocket.Conn) { io.Copy(c, c) }))
	admin2 := freePort(t)
	proxies := httpProxy("web-a", infoService(t, "a"), `customDomains = ["a.hop.test"]
hostHeaderRewrite = "backend.local"
requestHeaders.set.X-From = "hop"
responseHeaders.set.X-Served-By = "hop-vhost"`) +
		httpProxy("web-api", infoService(t, "api"), `customDomains = ["a.hop.test"]
locations = ["/api", "/api/v2"]`) +
		httpProxy("web-sub", infoService(t, "sub"), `subdomain = "sub"`) +
		httpProxy("web-wild", infoService(t, "wild"), `customDomains = ["*.wild.hop.test"]`) +
		httpProxy("web-auth", infoService(t, "auth"), `customDomains = ["auth.hop.test"]
httpUser = "alice"
httpPassword = "wonderland"`) +
		httpProxy("web-bob", infoService(t, "bob"), `customDomains = ["auth.hop.test"]
routeByHTTPUser = "bob"
httpUser = "bob"
httpPassword = "builder"`) +
		httpProxy("bulk", bulk, `customDomains = ["bulk.hop.test"]`) +
		httpProxy("ws", ws, `customDomains = ["ws.hop.test"]`)
	admin1 := freePort(t)
	cli := start(t, "hopc", withID(clientConfig(srvPort, fmt.Sprintf("[webServer]\nport = %d\n", admin1)+proxies), "vhost-1"))
	c := vhostClient(loop(httpPort), nil)
	eventually(t, ready, "the http proxies to be routed", func() bool {
		for _, h := range []string{"a", "ws", "bulk", "sub", "x.wild", "auth"} {
			resp, err := c.Get("http://" + h + ".hop.test/")
			if err != nil {
				return false
			}
			resp.Body.Close()
			if resp.StatusCode == 404 || resp.StatusCode == 502 {
				return false
			}
		}
		return true
	})

	t.Run("status shows the domains", func(t *testing.T) {
		waitAPI(t, ready, "hopc status to show each proxy's domains", func() error {
			var st struct {
				Proxies []struct {
					Name, State, RemoteAddr string
					Domains                 []string
				} `json:"proxies"`
			}
			if err := apiGet(fmt.Sprintf("http://127.0.0.1:%d/api/status", admin1), "", "", &st); err != nil {
				return err
			}
			got := map[string]string{}
			for _, p := range st.Proxies {
				got[p.Name] = p.State + " " + strings.Join(p.Domains, ",") + " " + p.RemoteAddr
			}
			if got["web-sub"] != "running sub.hop.test " || got["web-wild"] != "running *.wild.hop.test " {
				return fmt.Errorf("status %v", got)
			}
			return nil
		})
	})

	t.Run("routing", func(t *testing.T) {
		for _, tc := range []struct{ url, tag, path string }{
			{"http://a.hop.test/", "a", "/"},
			{"http://a.hop.test/other", "a", "/other"},
			{"http://a.hop.test/api", "api", "/api"},
			{"http://a.hop.test/api/v2/x", "api", "/api/v2/x"},
			{"http://sub.hop.test/s", "sub", "/s"},
			{"http://x.wild.hop.test/", "wild", "/"},
			{"http://y.z.wild.hop.test/", "wild", "/"},
		} {
			s, resp := getSeen(t, c, newReq(t, "GET", tc.url, nil))
			if resp.StatusCode != 200 || s.Tag != tc.tag || s.Path != tc.path {
				t.Errorf("GET %s: %d, backend %q path %q; want %q %q", tc.url, resp.StatusCode, s.Tag, s.Path, tc.tag, tc.path)
			}
		}
	})

	t.Run("keep-alive", func(t *testing.T) {
		var dials atomic.Int32
		d := &net.Dialer{Timeout: 5 * time.Second}
		kc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			dials.Add(1)
			return d.DialContext(ctx, "tcp", loop(httpPort))
		}}}
		for i := range 20 {
			if s, resp := getSeen(t, kc, newReq(t, "GET", "http://a.hop.test/k", nil)); resp.StatusCode != 200 || s.Path != "/k" {
				t.Fatalf("request %d: %d %+v", i, resp.StatusCode, s)
			}
		}
		if n := dials.Load(); n != 1 {
			t.Errorf("20 requests took %d connections to hops, want 1 kept alive", n)
		}
		// One kept-alive connection, each request routed by its own Host.
		conn, err := net.DialTimeout("tcp", loop(httpPort), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		br := bufio.NewReader(conn)
		for i, host := range []string{"a", "sub", "x.wild", "a", "nope", "sub"} {
			fmt.Fprintf(conn, "GET /k%d HTTP/1.1\r\nHost: %s.hop.test\r\n\r\n", i, host)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("request %d on the kept-alive connection: %v", i, err)
			}
			var s seen
			json.NewDecoder(resp.Body).Decode(&s)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			want := map[string]string{"a": "a", "sub": "sub", "x.wild": "wild"}[host]
			if s.Tag != want || (want == "" && resp.StatusCode != 404) {
				t.Errorf("request %d for %s: %d from %q, want %q", i, host, resp.StatusCode, s.Tag, want)
			}
		}
	})

	t.Run("headers", func(t *testing.T) {
		req := newReq(t, "GET", "http://a.hop.test/h", nil)
		req.Header.Set("X-Forwarded-For", "203.0.113.7")
		s, resp := getSeen(t, c, req)
		if s.Host != "backend.local" {
			t.Errorf("Host at the backend %q, want the rewrite backend.local", s.Host)
		}
		if got := s.Header.Get("X-From"); got != "hop" {
			t.Errorf("X-From = %q", got)
		}
		if got := s.Header.Get("X-Forwarded-For"); got != "203.0.113.7, 127.0.0.1" {
			t.Errorf("X-Forwarded-For = %q, want the prior chain and 127.0.0.1", got)
		}
		if got := s.Header.Get("X-Forwarded-Host"); got != "a.hop.test" {
			t.Errorf("X-Forwarded-Host = %q", got)
		}
		if got := s.Header.Get("X-Forwarded-Proto"); got != "http" {
			t.Errorf("X-Forwarded-Proto = %q", got)
		}
		if got := resp.Header.Get("X-Served-By"); got != "hop-vhost" {
			t.Errorf("response X-Served-By = %q", got)
		}
	})

	t.Run("basic auth", func(t *testing.T) {
		_, resp := getSeen(t, c, newReq(t, "GET", "http://auth.hop.test/", nil))
		if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("without credentials: %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
		req := newReq(t, "GET", "http://auth.hop.test/", nil)
		req.SetBasicAuth("alice", "wrong")
		if _, resp := getSeen(t, c, req); resp.StatusCode != 401 {
			t.Errorf("wrong password: %d", resp.StatusCode)
		}
		req = newReq(t, "GET", "http://auth.hop.test/", nil)
		req.SetBasicAuth("alice", "wonderland")
		s, resp := getSeen(t, c, req)
		if resp.StatusCode != 200 || s.Tag != "auth" || s.Header.Get("Authorization") != "" {
			t.Errorf("alice: %d, backend %q, Authorization forwarded %q", resp.StatusCode, s.Tag, s.Header.Get("Authorization"))
		}
		req = newReq(t, "GET", "http://auth.hop.test/", nil)
		req.SetBasicAuth("bob", "builder")
		if s, resp := getSeen(t, c, req); resp.StatusCode != 200 || s.Tag != "bob" {
			t.Errorf("bob (routeByHTTPUser): %d, backend %q", resp.StatusCode, s.Tag)
		}
	})

	t.Run("404", func(t *testing.T) {
		resp, err := c.Get("http://unknown.hop.test/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 404 || string(body) != "<h1>nothing here (custom)</h1>\n" {
			t.Errorf("unknown host: %d %q", resp.StatusCode, body)
		}
	})

	t.Run("20 MB both ways", func(t *testing.T) {
		up := sha256.New()
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(pattern(io.MultiWriter(pw, up), size, 42)) }()
		req := newReq(t, "POST", "http://bulk.hop.test/upload", pr)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		down := sha256.New()
		n, err := io.Copy(down, resp.Body)
		if err != nil || n != size {
			t.Fatalf("download: %d bytes, %v", n, err)
		}
		want := sha256.New()
		pattern(want, size, 7)
		if !bytes.Equal(down.Sum(nil), want.Sum(nil)) {
			t.Errorf("download differs")
		}
		if got := resp.Header.Get("X-Upload-Sha256"); got != hex.EncodeToString(up.Sum(nil)) || resp.Header.Get("X-Upload-Bytes") != strconv.Itoa(size) {
			t.Errorf("upload: %s bytes, sha256 %s; want %d, %x", resp.Header.Get("X-Upload-Bytes"), got, size, up.Sum(nil))
		}
		waitAPI(t, ready, "GET /api/proxies to count the bulk proxy's bytes", func() error {
			var ps []struct {
				Name                          string
				Domains                       []string
				ConnsTotal, BytesIn, BytesOut int64
			}
			if err := apiGet(fmt.Sprintf("http://127.0.0.1:%d/api/proxies", web), "admin", "vhost-pw", &ps); err != nil {
				return err
			}
			for _, p := range ps {
				if p.Name == "bulk" && len(p.Domains) == 1 && p.Domains[0] == "bulk.hop.test" && p.ConnsTotal >= 1 && p.BytesIn >= size && p.BytesOut >= size {
					return nil
				}
			}
			return fmt.Errorf("proxies %+v: bulk lacks its 20 MB each way", ps)
		})
	})

	t.Run("websocket", func(t *testing.T) {
		cfg, err := websocket.NewConfig("ws://ws.hop.test/echo", "http://ws.hop.test/")
		if err != nil {
			t.Fatal(err)
		}
		raw, err := net.DialTimeout("tcp", loop(httpPort), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		raw.SetDeadline(time.Now().Add(30 * time.Second))
		wc, err := websocket.NewClient(cfg, raw)
		if err != nil {
			t.Fatalf("websocket handshake through hops: %v", err)
		}
		for i := range 20 {
			msg := fmt.Sprintf("message %d %s", i, strings.Repeat("x", i*100))
			if err := websocket.Message.Send(wc, msg); err != nil {
				t.Fatal(err)
			}
			var got string
			if err := websocket.Message.Receive(wc, &got); err != nil || got != msg {
				t.Fatalf("echo %d: %q, %v", i, got, err)
			}
		}
	})

	t.Run("curl", func(t *testing.T) {
		if _, err := exec.LookPath("curl"); err != nil {
			t.Skip("no curl")
		}
		hp := strconv.Itoa(httpPort)
		out, code := runCmd(t, "curl", "-sS", "--max-time", "20", "--resolve", "a.hop.test:"+hp+":127.0.0.1", "-D", "-", "http://a.hop.test:"+hp+"/api/x")
		if code != 0 || !strings.Contains(out, `"Tag":"api"`) || !strings.Contains(out, `"Path":"/api/x"`) {
			t.Errorf("curl a.hop.test/api/x: exit %d\n%s", code, out)
		}
		out, code = runCmd(t, "curl", "-sS", "--max-time", "20", "--resolve", "auth.hop.test:"+hp+":127.0.0.1", "-u", "alice:wonderland", "http://auth.hop.test:"+hp+"/")
		if code != 0 || !strings.Contains(out, `"Tag":"auth"`) {
			t.Errorf("curl with basic auth: exit %d\n%s", code, out)
		}
		out, code = runCmd(t, "curl", "-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}", "--resolve", "nope.hop.test:"+hp+":127.0.0.1", "http://nope.hop.test:"+hp+"/")
		if code != 0 || out != "404" {
			t.Errorf("curl unknown host: exit %d, %q", code, out)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		for name, c := range map[string]struct {
			req  string
			want string
		}{
			"garbage":         {"\x16\x03\x01 not http at all\r\n\r\n", "HTTP/1.1 400"},
			"oversize header": {"GET / HTTP/1.1\r\nHost: a.hop.test\r\nX-Big: " + strings.Repeat("a", 200<<10) + "\r\n\r\n", "HTTP/1.1 431"},
			"no host":         {"GET / HTTP/1.0\r\n\r\n", "HTTP/1.0 404"},
		} {
			conn, err := net.DialTimeout("tcp", loop(httpPort), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			conn.SetDeadline(time.Now().Add(20 * time.Second))
			go io.WriteString(conn, c.req)
			line, err := bufio.NewReader(conn).ReadString('\n')
			conn.Close()
			if !strings.HasPrefix(line, c.want) {
				t.Errorf("%s: answered %q (%v), want %q", name, line, err, c.want)
			}
		}
		if !srv.running() {
			t.Fatal("hops exited")
		}
	})

	t.Run("domain conflict", func(t *testing.T) {
		other := httpProxy("mine-too", infoService(t, "intruder"), `customDomains = ["a.hop.test"]`)
		start(t, "hopc", withID(clientConfig(srvPort, fmt.Sprintf("[webServer]\nport = %d\n", admin2)+other), "vhost-2"))
		waitAPI(t, ready, "the second client's proxy to be refused", func() error {
			var st struct {
				Proxies []struct{ Name, State, Error string } `json:"proxies"`
			}
			if err := apiGet(fmt.Sprintf("http://127.0.0.1:%d/api/status", admin2), "", "", &st); err != nil {
				return err
			}
			if len(st.Proxies) != 1 || st.Proxies[0].Error == "" {
				return fmt.Errorf("status %+v", st)
			}
			if e := st.Proxies[0].Error; !strings.Contains(e, `domain "a.hop.test" is served by web-a`) {
				return fmt.Errorf("error %q does not name the domain", e)
			}
			return nil
		})
		if s, _ := getSeen(t, c, newReq(t, "GET", "http://a.hop.test/", nil)); s.Tag != "a" {
			t.Errorf("after the conflict a.hop.test goes to %q, want the first client's", s.Tag)
		}
	})

	if code := cli.interrupt(20 * time.Second); code != 0 {
		t.Errorf("hopc exit code %d", code)
	}
	if code := srv.interrupt(20 * time.Second); code != 0 {
		t.Errorf("hops exit code %d", code)
	}
}

// runCmd runs a program to completion (bounded) and returns its stdout
// and exit code.
func runCmd(t *testing.T, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Logf("%s: %v: %s", name, err, stderr.String())
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		return string(out), -1
	}
	return string(out), 0
}

// selfSigned writes a certificate and key for domain into dir and returns
// the paths and the parsed certificate.
func selfSigned(t *testing.T, dir, domain string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: domain}, DNSNames: []string{domain},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})))
	return certFile, keyFile, cert
}

func TestVhostHTTPS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, cert := selfSigned(t, dir, "secure.hop.test")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	backend := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "tls backend saw %s %s", r.Host, r.URL.Path)
	})}
	go backend.Serve(ln)
	t.Cleanup(func() { backend.Close() })
	backendPort := ln.Addr().(*net.TCPAddr).Port

	srvPort, httpsPort := freePort(t), freePort(t)
	web := freePort(t)
	srv := start(t, "hops", serverConfig(srvPort, fmt.Sprintf("vhostHTTPSPort = %d\n[webServer]\nport = %d\nuser = \"admin\"\npassword = \"vhost-pw\"\n", httpsPort, web)))
	waitListening(t, loop(srvPort), ready)
	start(t, "hopc", clientConfig(srvPort, fmt.Sprintf("\n[[proxies]]\nname = \"tls\"\ntype = \"https\"\nlocalPort = %d\ncustomDomains = [\"secure.hop.test\"]\n", backendPort)))

	roots := x509.NewCertPool()
	roots.AddCert(cert)
	c := vhostClient(loop(httpsPort), roots)
	var body string
	eventually(t, ready, "the https proxy to be routed", func() bool {
		resp, err := c.Get("https://secure.hop.test/path")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		if len(resp.TLS.PeerCertificates) == 0 || !resp.TLS.PeerCertificates[0].Equal(cert) {
			t.Fatalf("the client did not get the backend's own certificate")
		}
		return true
	})
	if body != "tls backend saw secure.hop.test /path" {
		t.Errorf("body %q", body)
	}

	if _, err := exec.LookPath("curl"); err == nil {
		hp := strconv.Itoa(httpsPort)
		out, code := runCmd(t, "curl", "-sS", "--max-time", "20", "--cacert", certFile, "--resolve", "secure.hop.test:"+hp+":127.0.0.1", "https://secure.hop.test:"+hp+"/curl")
		if code != 0 || out != "tls backend saw secure.hop.test:"+hp+" /curl" {
			t.Errorf("curl: exit %d, %q", code, out)
		}
	}

	// Unknown server name, no server name, not TLS: the connection is
	// closed, hops stays up.
	for name, dial := range map[string]func() error{
		"unknown name": func() error {
			cc := &tls.Config{ServerName: "other.hop.test", RootCAs: roots}
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", loop(httpsPort), cc)
			if err == nil {
				conn.Close()
			}
			return err
		},
		"not tls": func() error {
			conn, err := net.DialTimeout("tcp", loop(httpsPort), 5*time.Second)
			if err != nil {
				return nil
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(20 * time.Second))
			io.WriteString(conn, "GET / HTTP/1.1\r\nHost: secure.hop.test\r\n\r\n")
			_, err = conn.Read(make([]byte, 1))
			return err
		},
	} {
		if err := dial(); err == nil {
			t.Errorf("%s: the connection was served", name)
		}
	}
	if !srv.running() {
		t.Fatal("hops exited")
	}
	// The proxy's counters show the connections and bytes.
	waitAPI(t, ready, "GET /api/proxies to count the https connections", func() error {
		var ps []struct {
			Name                string
			Type                string
			ConnsTotal, BytesIn int64
			BytesOut            int64
		}
		if err := apiGet(fmt.Sprintf("http://127.0.0.1:%d/api/proxies", web), "admin", "vhost-pw", &ps); err != nil {
			return err
		}
		if len(ps) != 1 || ps[0].Type != "https" || ps[0].ConnsTotal < 1 || ps[0].BytesIn < 100 || ps[0].BytesOut < 500 {
			return fmt.Errorf("proxies %+v", ps)
		}
		return nil
	})
}

// TestVhostRefusals: a subdomain without the server's subDomainHost, and
// an http proxy on a server without vhostHTTPPort, are refused per proxy.
func TestVhostRefusals(t *testing.T) {
	srvPort, admin := freePort(t), freePort(t)
	start(t, "hops", serverConfig(srvPort, fmt.Sprintf("vhostHTTPSPort = %d\n", freePort(t))))
	waitListening(t, loop(srvPort), ready)
	proxies := httpProxy("sub", 8080, `subdomain = "app"`) +
		fmt.Sprintf("\n[[proxies]]\nname = \"tls-sub\"\ntype = \"https\"\nlocalPort = 8443\nsubdomain = \"app\"\n")
	start(t, "hopc", clientConfig(srvPort, fmt.Sprintf("[webServer]\nport = %d\n", admin)+proxies))
	waitAPI(t, ready, "both proxies refused with their reason", func() error {
		var st struct {
			Proxies []struct{ Name, State, Error string } `json:"proxies"`
		}
		if err := apiGet(fmt.Sprintf("http://127.0.0.1:%d/api/status", admin), "", "", &st); err != nil {
			return err
		}
		if len(st.Proxies) != 2 {
			return fmt.Errorf("status %+v", st)
		}
		if e := st.Proxies[0].Error; !strings.Contains(e, "vhostHTTPPort is not set") {
			return fmt.Errorf("http proxy: %q", e)
		}
		if e := st.Proxies[1].Error; !strings.Contains(e, "needs the server's subDomainHost") {
			return fmt.Errorf("https subdomain: %q", e)
		}
		return nil
	})
}
