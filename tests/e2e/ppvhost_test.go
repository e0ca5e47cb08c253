package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// ppWebService serves HTTP (over TLS with cfg) behind a listener that
// decodes the PROXY protocol header hopc writes; every answer is the
// client address the header named, and its version.
func ppWebService(t *testing.T, cfg *tls.Config) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pl := &proxyproto.Listener{Listener: ln, Policy: func(net.Addr) (proxyproto.Policy, error) { return proxyproto.REQUIRE, nil }}
	var inner net.Listener = pl
	if cfg != nil {
		inner = tls.NewListener(pl, cfg)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.RemoteAddr)
	})}
	go srv.Serve(inner)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// rawGet sends n keep-alive requests for host on c and returns the
// bodies.
func rawGet(c net.Conn, host string, n int) ([]string, error) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	var out []string
	for range n {
		if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host); err != nil {
			return out, err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return out, err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return out, fmt.Errorf("%s: %q", resp.Status, b)
		}
		out = append(out, string(b))
	}
	return out, nil
}

// TestProxyProtocolVhostAndXTCP: transport.proxyProtocolVersion on http,
// https and xtcp proxies gives the local service the real client: the
// browser's address through the vhost ports (on http, each browser
// connection's own, also while an earlier browser's connection to the
// service could be reused), and the visitor's application connection
// through an xtcp link.
func TestProxyProtocolVhostAndXTCP(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, cert := selfSigned(t, dir, "pps.hop.test")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	web, tlsWeb, raw := ppWebService(t, nil), ppWebService(t, &tls.Config{Certificates: []tls.Certificate{pair}}), ppService(t)

	srvPort, hp, sslp := freePort(t), freePort(t), freePort(t)
	start(t, "hops", serverConfig(srvPort, fmt.Sprintf("vhostHTTPPort = %d\nvhostHTTPSPort = %d\n", hp, sslp)))
	waitListening(t, loop(srvPort), ready)
	owner := start(t, "hopc", withID(clientConfig(srvPort, fmt.Sprintf(`
[[proxies]]
name = "pp-http"
type = "http"
localPort = %d
customDomains = ["pp.hop.test"]
transport.proxyProtocolVersion = "v1"

[[proxies]]
name = "pp-https"
type = "https"
localPort = %d
customDomains = ["pps.hop.test"]
transport.proxyProtocolVersion = "v2"

[[proxies]]
name = "pp-xtcp"
type = "xtcp"
secretKey = "pp-secret-key"
localPort = %d
transport.proxyProtocolVersion = "v2"
`, web, tlsWeb, raw)), "owner"))
	eventually(t, ready, "the three proxies to start", func() bool {
		return owner.count("proxy started") == 2 && owner.count("secret proxy registered") == 1
	})

	t.Run("http", func(t *testing.T) {
		for range 3 { // browsers one after the other, keep-alive each
			c, err := net.DialTimeout("tcp", loop(hp), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			got, err := rawGet(c, "pp.hop.test", 3)
			c.Close()
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range got {
				if g != c.LocalAddr().String() {
					t.Errorf("the web app saw client %q, want the browser %s", g, c.LocalAddr())
				}
			}
		}
	})
	t.Run("https", func(t *testing.T) {
		roots := x509.NewCertPool()
		roots.AddCert(cert)
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", loop(sslp), &tls.Config{ServerName: "pps.hop.test", RootCAs: roots})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		got, err := rawGet(c, "pps.hop.test", 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range got {
			if g != c.LocalAddr().String() {
				t.Errorf("the TLS backend saw client %q, want the browser %s", g, c.LocalAddr())
			}
		}
	})
	t.Run("xtcp", func(t *testing.T) {
		vt := freePort(t)
		start(t, "hopc", withID(clientConfig(srvPort, fmt.Sprintf("\n[[visitors]]\nname = \"v\"\ntype = \"xtcp\"\nserverName = \"pp-xtcp\"\nsecretKey = \"pp-secret-key\"\nbindPort = %d\n", vt)), "visitor"))
		var line, local string
		eventually(t, ready, "a connection through the xtcp visitor", func() bool {
			var err error
			line, local, err = ppLine(loop(vt))
			return err == nil
		})
		if want := fmt.Sprintf("2 PROXY %s %s", local, loop(vt)); line != want {
			t.Errorf("xtcp: service saw %q, want %q", line, want)
		}
		// Later connections on the same link name their own clients.
		for range 3 {
			line, local, err := ppLine(loop(vt))
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("2 PROXY %s %s", local, loop(vt)); !strings.EqualFold(line, want) {
				t.Errorf("xtcp: service saw %q, want %q", line, want)
			}
		}
	})
}
