package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// groupWeb is a web service for a group member: it answers its tag, and
// its /health answers 503 while down is set.
type groupWeb struct {
	tag  string
	port int
	down atomic.Bool
}

func newGroupWeb(t *testing.T, tag string) *groupWeb {
	g := &groupWeb{tag: tag}
	g.port = webService(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" && g.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, g.tag)
	}))
	return g
}

// whoServes makes n requests for host through c and counts the answers;
// failed requests count under their error or status.
func whoServes(c *http.Client, url string, n int) map[string]int {
	seen := map[string]int{}
	for range n {
		resp, err := c.Get(url)
		if err != nil {
			seen["error"]++
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			seen[resp.Status]++
			continue
		}
		seen[string(b)]++
	}
	return seen
}

// TestVhostHTTPGroup: two hopc serve one domain as a load-balancing group
// and share its requests over one keep-alive connection; a third with a
// wrong groupKey is refused and the group keeps the domain; a member
// whose http health check fails is withdrawn and comes back when it
// passes; with a member's hopc killed, the other serves every request.
func TestVhostHTTPGroup(t *testing.T) {
	a, b := newGroupWeb(t, "a"), newGroupWeb(t, "b")
	srvPort, httpPort := freePort(t), freePort(t)
	srv := start(t, "hops", serverConfig(srvPort, fmt.Sprintf("vhostHTTPPort = %d\n", httpPort)))
	waitListening(t, loop(srvPort), ready)
	member := func(name string, port int, key string) string {
		return httpProxy(name, port, "customDomains = [\"lb.hop.test\"]\nloadBalancer.group = \"web\"\nloadBalancer.groupKey = \""+key+"\"\n"+
			"healthCheck.type = \"http\"\nhealthCheck.path = \"/health\"\nhealthCheck.intervalSeconds = 1\nhealthCheck.timeoutSeconds = 1\nhealthCheck.maxFailed = 2\n")
	}
	ca := start(t, "hopc", withID(clientConfig(srvPort, member("web-a", a.port, "k")), "ca"))
	eventually(t, ready, "member a to be routed", func() bool { return srv.count("proxy started in load-balancing group") == 1 })
	cb := start(t, "hopc", withID(clientConfig(srvPort, member("web-b", b.port, "k")), "cb"))
	eventually(t, ready, "member b to be routed", func() bool { return srv.count("proxy started in load-balancing group") == 2 })
	cc := start(t, "hopc", withID(clientConfig(srvPort, member("web-c", newGroupWeb(t, "c").port, "wrong")), "cc"))
	eventually(t, ready, "the wrong key to be refused", func() bool {
		return cc.count(`is served by load-balancing group \"web\", whose groupKey is another`) > 0
	})

	c := vhostClient(loop(httpPort), nil)
	url := "http://lb.hop.test/"
	if seen := whoServes(c, url, 20); seen["a"] != 10 || seen["b"] != 10 {
		t.Fatalf("20 requests reached %v; want 10 at a and 10 at b (round robin), none at the refused c", seen)
	}

	a.down.Store(true)
	eventually(t, ready, "a to be withdrawn", func() bool {
		return ca.count("health check failed: proxy withdrawn") == 1 && srv.count("proxy closed by client") == 1
	})
	if seen := whoServes(c, url, 10); seen["b"] != 10 {
		t.Fatalf("with a withdrawn, 10 requests reached %v; want all at b", seen)
	}
	a.down.Store(false)
	eventually(t, ready, "a to come back", func() bool {
		return ca.count("health check passed: proxy registered again") == 1 && srv.count("proxy started in load-balancing group") == 3
	})
	if seen := whoServes(c, url, 10); seen["a"] != 5 || seen["b"] != 5 {
		t.Fatalf("with a back, 10 requests reached %v; want 5 each", seen)
	}

	if err := cb.cmd.Process.Kill(); err != nil { // by PID
		t.Fatal(err)
	}
	cb.waitExit(10 * time.Second)
	eventually(t, ready, "the group to lose the killed member", func() bool {
		seen := whoServes(c, url, 4)
		return seen["a"] == 4
	})
	if seen := whoServes(c, url, 10); seen["a"] != 10 {
		t.Fatalf("with b's hopc killed, 10 requests reached %v; want all at a", seen)
	}
}

// TestVhostHTTPSGroup: two https members of one group share connections
// by SNI, each with its backend's own certificate.
func TestVhostHTTPSGroup(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, cert := selfSigned(t, dir, "tls-lb.hop.test")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	backend := func(tag string) int {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, tag) })}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return ln.Addr().(*net.TCPAddr).Port
	}
	srvPort, httpsPort := freePort(t), freePort(t)
	srv := start(t, "hops", serverConfig(srvPort, fmt.Sprintf("vhostHTTPSPort = %d\n", httpsPort)))
	waitListening(t, loop(srvPort), ready)
	for _, m := range []string{"a", "b"} {
		start(t, "hopc", withID(clientConfig(srvPort, fmt.Sprintf("\n[[proxies]]\nname = \"tls-%s\"\ntype = \"https\"\nlocalPort = %d\ncustomDomains = [\"tls-lb.hop.test\"]\nloadBalancer.group = \"tls\"\nloadBalancer.groupKey = \"k\"\n", m, backend(m))), "c"+m))
	}
	eventually(t, ready, "both members to be routed", func() bool { return srv.count("proxy started in load-balancing group") == 2 })
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	seen := map[string]int{}
	for range 10 {
		// A new client each time: one TLS connection is one pick.
		c := vhostClient(loop(httpsPort), roots)
		c.Transport.(*http.Transport).DisableKeepAlives = true
		resp, err := c.Get("https://tls-lb.hop.test/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seen[strings.TrimSpace(string(b))]++
	}
	if seen["a"] != 5 || seen["b"] != 5 {
		t.Fatalf("10 TLS connections reached %v; want 5 each", seen)
	}
}
