package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func tcpmuxProxy(name string, port int, extra string) string {
	return fmt.Sprintf("\n[[proxies]]\nname = %q\ntype = \"tcpmux\"\nmultiplexer = \"httpconnect\"\nlocalPort = %d\n%s\n", name, port, extra)
}

// connect opens a CONNECT tunnel to target through the tcpmux port at
// addr, with Proxy-Authorization when user is set, and returns the
// status line and, on 200, the tunnel.
func connect(t *testing.T, addr, target, user, pass string) (string, net.Conn, *bufio.Reader) {
	t.Helper()
	st, c, br, err := tryConnect(t, addr, target, user, pass)
	if err != nil {
		t.Fatal(err)
	}
	return st, c, br
}

// connectStatus is connect's status line for a poll: a dial error is
// logged and gives "", so the poll tries again until its deadline.
func connectStatus(t *testing.T, addr, target, user, pass string) string {
	t.Helper()
	st, _, _, err := tryConnect(t, addr, target, user, pass)
	if err != nil {
		t.Logf("CONNECT %s through %s: %v (trying again)", target, addr, err)
	}
	return st
}

// tryConnect is connect, returning a dial error instead of failing.
func tryConnect(t *testing.T, addr, target, user, pass string) (string, net.Conn, *bufio.Reader, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", nil, nil, err
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	req := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n"
	if user != "" {
		req += "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass)) + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	status, err := br.ReadString('\n')
	if err != nil {
		return "", nil, nil, nil
	}
	for { // the rest of the head
		l, err := br.ReadString('\n')
		if err != nil || l == "\r\n" {
			break
		}
	}
	return strings.TrimSpace(status), c, br, nil
}

// tagService answers each connection with tag and a newline, then echoes.
func tagService(t *testing.T, tag string) int {
	return tcpService(t, func(c net.Conn) {
		io.WriteString(c, tag+"\n")
		io.Copy(c, c)
	})
}

func readTag(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	l, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("tunnel: %v", err)
	}
	return strings.TrimSpace(l)
}

// TestTCPMux: tcpmux proxies (multiplexer "httpconnect") through real
// hops and hopc, reached with curl -p and with a Go CONNECT client:
// routing by the CONNECT host, Proxy-Authorization (407), routing by the
// proxy user (routeByHTTPUser), an unknown host (404) and a malformed
// request (400), with hops staying up.
func TestTCPMux(t *testing.T) {
	srvPort, muxPort, api := freePort(t), freePort(t), freePort(t)
	srv := start(t, "hops", serverConfig(srvPort, fmt.Sprintf("tcpmuxHTTPConnectPort = %d\n[webServer]\nport = %d\nuser = \"admin\"\npassword = \"mux-pw\"\n", muxPort, api)))
	waitListening(t, loop(srvPort), ready)
	web := infoService(t, "tunnel-web")
	bob, anyone, pp := tagService(t, "bob"), tagService(t, "anyone"), ppService(t)
	cli := start(t, "hopc", clientConfig(srvPort,
		tcpmuxProxy("tunnel", web, "customDomains = [\"tunnel1.hop.test\"]\nhttpUser = \"tu\"\nhttpPassword = \"tpw\"\n")+
			tcpmuxProxy("bob", bob, "customDomains = [\"shared.hop.test\"]\nrouteByHTTPUser = \"bob\"\nhttpUser = \"bob\"\nhttpPassword = \"bobpw\"\n")+
			tcpmuxProxy("anyone", anyone, "customDomains = [\"shared.hop.test\"]\n")+
			tcpmuxProxy("pp", pp, "customDomains = [\"pp.hop.test\"]\ntransport.proxyProtocolVersion = \"v2\"\n")))
	mux := loop(muxPort)
	eventually(t, ready, "the tcpmux proxies to be routed", func() bool {
		return connectStatus(t, mux, "shared.hop.test:22", "", "") == "HTTP/1.1 200 Connection established"
	})
	eventually(t, ready, "every tcpmux proxy to be routed", func() bool {
		st := connectStatus(t, mux, "shared.hop.test:22", "bob", "bobpw")
		st2 := connectStatus(t, mux, "tunnel1.hop.test:80", "tu", "tpw")
		st3 := connectStatus(t, mux, "pp.hop.test:80", "", "")
		return st == "HTTP/1.1 200 Connection established" && st2 == st && st3 == st
	})

	// transport.proxyProtocolVersion: the local service learns the
	// tunnel user's address, and the tcpmux port as the destination.
	st, c, br := connect(t, mux, "pp.hop.test:80", "", "")
	if want := fmt.Sprintf("2 PROXY %s %s", c.LocalAddr(), mux); st != "HTTP/1.1 200 Connection established" || readTag(t, br) != want {
		t.Fatalf("PROXY header through tcpmux: status %q, want the header line %q", st, want)
	}

	// Go client: routing by the proxy user, an echo through the tunnel.
	st, c, br = connect(t, mux, "shared.hop.test:22", "bob", "bobpw")
	if st != "HTTP/1.1 200 Connection established" || readTag(t, br) != "bob" {
		t.Fatalf("bob: %q", st)
	}
	io.WriteString(c, "ping\n")
	if got := readTag(t, br); got != "ping" {
		t.Fatalf("echo through the tunnel: %q", got)
	}
	if st, _, br := connect(t, mux, "SHARED.hop.test.:443", "", ""); st != "HTTP/1.1 200 Connection established" || readTag(t, br) != "anyone" {
		t.Fatalf("without a proxy user: %q", st)
	}
	if st, _, _ := connect(t, mux, "shared.hop.test:22", "bob", "wrong"); st != "HTTP/1.1 407 Proxy Authentication Required" {
		t.Fatalf("bob with a wrong password: %q", st)
	}
	if st, _, _ := connect(t, mux, "tunnel1.hop.test:80", "", ""); st != "HTTP/1.1 407 Proxy Authentication Required" {
		t.Fatalf("no credentials for a proxy with httpUser: %q", st)
	}
	if st, _, _ := connect(t, mux, "nobody.hop.test:80", "", ""); st != "HTTP/1.1 404 Not Found" {
		t.Fatalf("unknown host: %q", st)
	}
	if got := rawExchange(t, mux, "GET / HTTP/1.1\r\nHost: tunnel1.hop.test\r\n\r\n"); got != "HTTP/1.1 405 Method Not Allowed" {
		t.Fatalf("GET on the tcpmux port: %q", got)
	}
	if got := rawExchange(t, mux, "CONNECT nohost HTTP/1.1\r\n\r\n"); got != "HTTP/1.1 400 Bad Request" {
		t.Fatalf("malformed CONNECT: %q", got)
	}

	// curl -p: an HTTP request inside the CONNECT tunnel.
	if _, err := exec.LookPath("curl"); err != nil {
		t.Log("curl not installed: the Go client checks above stand alone")
	} else {
		out, code := runCmd(t, "curl", "-sS", "--max-time", "20", "-p", "--proxy", "http://tu:tpw@"+mux, "http://tunnel1.hop.test/through-curl")
		if code != 0 || !strings.Contains(out, `"Tag":"tunnel-web"`) || !strings.Contains(out, `"Path":"/through-curl"`) {
			t.Errorf("curl -p: exit %d, %q", code, out)
		}
		// %{http_connect} is the status hops answered the CONNECT with.
		out, code = runCmd(t, "curl", "-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_connect}", "-p", "--proxy", "http://tu:bad@"+mux, "http://tunnel1.hop.test/")
		if code == 0 || out != "407" {
			t.Errorf("curl -p with a wrong password: exit %d, CONNECT status %q; want a failure and 407", code, out)
		}
	}

	// The API (and so the dashboard) shows the type, the domains and the
	// tunnels of each proxy.
	waitAPI(t, ready, "GET /api/proxies to show the tcpmux proxies with their tunnels", func() error {
		var ps []struct {
			Name, Type          string
			Domains             []string
			ConnsTotal, BytesIn int64
		}
		if err := apiGet(fmt.Sprintf("http://127.0.0.1:%d/api/proxies", api), "admin", "mux-pw", &ps); err != nil {
			return err
		}
		for _, p := range ps {
			if p.Name == "bob" && p.Type == "tcpmux" && len(p.Domains) == 1 && p.Domains[0] == "shared.hop.test" && p.ConnsTotal >= 2 && p.BytesIn >= 5 {
				return nil
			}
		}
		return fmt.Errorf("proxies %+v", ps)
	})
	if !srv.running() {
		t.Fatal("hops exited")
	}
	if code := cli.interrupt(20 * time.Second); code != 0 {
		t.Errorf("hopc exit code %d", code)
	}
	if code := srv.interrupt(20 * time.Second); code != 0 {
		t.Errorf("hops exit code %d", code)
	}
}

// rawExchange writes req on a new connection to addr and returns the
// status line of the answer.
func rawExchange(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, req)
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

// TestVhostOnBindPort: vhostHTTPPort, vhostHTTPSPort and
// tcpmuxHTTPConnectPort all equal bindPort. Two hopc log in on that port
// (one sends no server name, one the name of the https proxy), and an http,
// an https (the backend's own certificate verified) and a tcpmux proxy
// all work on it.
func TestVhostOnBindPort(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, cert := selfSigned(t, dir, "secure.hop.test")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	tln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	backend := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "tls backend saw %s %s", r.Host, r.URL.Path)
	})}
	go backend.Serve(tln)
	t.Cleanup(func() { backend.Close() })
	tlsPort := tln.Addr().(*net.TCPAddr).Port

	port := freePort(t)
	srv := start(t, "hops", serverConfig(port, fmt.Sprintf("vhostHTTPPort = %d\nvhostHTTPSPort = %d\ntcpmuxHTTPConnectPort = %d\ntransport.handshakeTimeout = \"2s\"\n", port, port, port)))
	waitListening(t, loop(port), ready)
	web := infoService(t, "shared-web")
	tag := tagService(t, "shared-mux")
	cli := start(t, "hopc", clientConfig(port, httpProxy("web", web, "customDomains = [\"web.hop.test\"]")+
		fmt.Sprintf("\n[[proxies]]\nname = \"tls\"\ntype = \"https\"\nlocalPort = %d\ncustomDomains = [\"secure.hop.test\"]\n", tlsPort)+
		tcpmuxProxy("mux", tag, "customDomains = [\"mux.hop.test\"]")))

	roots := x509.NewCertPool()
	roots.AddCert(cert)
	sc := vhostClient(loop(port), roots)
	eventually(t, ready, "the https proxy on bindPort", func() bool {
		resp, err := sc.Get("https://secure.hop.test/s")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if !resp.TLS.PeerCertificates[0].Equal(cert) {
			t.Fatal("the client did not get the backend's own certificate")
		}
		return string(b) == "tls backend saw secure.hop.test /s"
	})
	// The second hopc, started once the https proxy is routed, sends a
	// server name in its ClientHello, and the one of the https proxy:
	// its ALPN "hop" still takes it to the login.
	cli2 := start(t, "hopc", clientConfig(port, "[transport.tls]\nserverName = \"secure.hop.test\"\n"+
		httpProxy("web2", web, "customDomains = [\"web2.hop.test\"]")))
	hc := vhostClient(loop(port), nil)
	for _, host := range []string{"web.hop.test", "web2.hop.test"} {
		eventually(t, ready, "the http proxy of "+host+" on bindPort", func() bool {
			resp, err := hc.Get("http://" + host + "/p")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode == 200 && strings.Contains(string(b), `"Tag":"shared-web"`) && strings.Contains(string(b), `"Host":"`+host+`"`)
		})
	}
	eventually(t, ready, "the tcpmux proxy on bindPort", func() bool {
		st, _, br := connect(t, loop(port), "mux.hop.test:22", "", "")
		return st == "HTTP/1.1 200 Connection established" && readTag(t, br) == "shared-mux"
	})
	// An unknown host is answered by the http vhost (404), not hop's TLS.
	if got := rawExchange(t, loop(port), "GET / HTTP/1.1\r\nHost: none.hop.test\r\n\r\n"); got != "HTTP/1.1 404 Not Found" {
		t.Errorf("unknown host on bindPort: %q", got)
	}
	// A peer that stalls before its method, or sends a broken
	// ClientHello, or junk, is closed (within transport.handshakeTimeout),
	// and the port goes on.
	for _, junk := range []string{"GE", "\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00", "\x16\x03\x01\x40\x00", "\xff\xfe\xfd"} {
		c, err := net.DialTimeout("tcp", loop(port), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		io.WriteString(c, junk)
		_, err = io.ReadAll(c)
		c.Close()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("%q: not closed by hops: %v", junk, err)
		}
	}
	if got := rawExchange(t, loop(port), "GET / HTTP/1.1\r\nHost: none.hop.test\r\n\r\n"); got != "HTTP/1.1 404 Not Found" {
		t.Errorf("after the junk: %q", got)
	}
	if n := srv.count("shared_with_bindPort=true"); n != 3 {
		t.Errorf("hops logged %d vhost listeners sharing bindPort, want 3:\n%s", n, srv.out.String())
	}
	if !srv.running() || !cli.running() || !cli2.running() {
		t.Fatal("a process exited")
	}
	for _, p := range []*proc{cli, cli2, srv} {
		if code := p.interrupt(20 * time.Second); code != 0 {
			t.Errorf("%s exit code %d", p.name, code)
		}
	}
}

// TestTCPMuxGroup: tcpmux proxies of two hopc in one load-balancing group
// share a host, the tunnels alternate between them, and when one hopc
// stops the other takes every tunnel.
func TestTCPMuxGroup(t *testing.T) {
	srvPort, muxPort := freePort(t), freePort(t)
	start(t, "hops", serverConfig(srvPort, fmt.Sprintf("tcpmuxHTTPConnectPort = %d\n", muxPort)))
	waitListening(t, loop(srvPort), ready)
	member := func(name string) *proc {
		return start(t, "hopc", clientConfig(srvPort, tcpmuxProxy(name, tagService(t, name),
			"customDomains = [\"group.hop.test\"]\nloadBalancer.group = \"g\"\nloadBalancer.groupKey = \"gk\"\n")))
	}
	a, _ := member("member-a"), member("member-b")
	mux := loop(muxPort)
	tag := func() string {
		st, _, br := connect(t, mux, "group.hop.test:22", "", "")
		if st != "HTTP/1.1 200 Connection established" {
			return ""
		}
		return readTag(t, br)
	}
	eventually(t, ready, "both members to take tunnels", func() bool {
		seen := map[string]bool{}
		for i := 0; i < 4; i++ {
			seen[tag()] = true
		}
		return seen["member-a"] && seen["member-b"]
	})
	if code := a.interrupt(20 * time.Second); code != 0 {
		t.Errorf("hopc exit code %d", code)
	}
	eventually(t, ready, "member-b to take every tunnel", func() bool {
		for i := 0; i < 4; i++ {
			if tag() != "member-b" {
				return false
			}
		}
		return true
	})
}
