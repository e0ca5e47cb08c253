package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestPluginsOnVhostProxies: the plugins frp users put on http and https
// proxies. An https proxy routed by SNI with https2http terminates the
// user's TLS in hopc with the plugin's certificate and forwards HTTP to
// the local web app; an http proxy serves files with static_file, and so
// does a tcpmux proxy behind its CONNECT tunnel. curl reaches them by name
// (--resolve, or through the tunnel), as a browser would by DNS.
func TestPluginsOnVhostProxies(t *testing.T) {
	dir := t.TempDir()
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "app %s host=%s proto=%s", r.URL.Path, r.Host, r.Header.Get("X-Forwarded-Proto"))
	}))
	defer web.Close()
	crt, key, _ := selfSigned(t, dir, "app.hop.test")
	www := filepath.Join(dir, "www")
	if err := os.Mkdir(www, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(www, "hello.txt"), "hello from static_file")

	sp, hp, sslp, muxp := freePort(t), freePort(t), freePort(t), freePort(t)
	start(t, "hops", serverConfig(sp, fmt.Sprintf("vhostHTTPPort = %d\nvhostHTTPSPort = %d\ntcpmuxHTTPConnectPort = %d\n", hp, sslp, muxp)))
	waitListening(t, loop(sp), ready)
	hopc := start(t, "hopc", clientConfig(sp, fmt.Sprintf(`
[[proxies]]
name = "app"
type = "https"
customDomains = ["app.hop.test"]
[proxies.plugin]
type = "https2http"
localAddr = %q
crtPath = %q
keyPath = %q

[[proxies]]
name = "files"
type = "http"
customDomains = ["files.hop.test"]
[proxies.plugin]
type = "static_file"
localPath = %q

[[proxies]]
name = "files-tunnel"
type = "tcpmux"
multiplexer = "httpconnect"
customDomains = ["files-tunnel.hop.test"]
[proxies.plugin]
type = "static_file"
localPath = %q
`, web.Listener.Addr(), crt, key, www, www)))
	eventually(t, ready, "the three proxies to start", func() bool { return hopc.count("proxy started") == 3 })

	ssl, h := strconv.Itoa(sslp), strconv.Itoa(hp)
	wantCurl(t, "app /x host=app.hop.test:"+ssl+" proto=https", "--cacert", crt, "--resolve", "app.hop.test:"+ssl+":127.0.0.1", "https://app.hop.test:"+ssl+"/x")
	if out, _, code := curl(t, "--resolve", "app.hop.test:"+ssl+":127.0.0.1", "https://app.hop.test:"+ssl+"/x"); code == 0 {
		t.Errorf("curl accepted the plugin's self-signed certificate without --cacert: %q", out)
	}
	wantCurl(t, "hello from static_file", "--resolve", "files.hop.test:"+h+":127.0.0.1", "http://files.hop.test:"+h+"/hello.txt")
	wantCurl(t, "404", "-o", "/dev/null", "-w", "%{http_code}", "--resolve", "files.hop.test:"+h+":127.0.0.1", "http://files.hop.test:"+h+"/missing.txt")
	// tcpmux: curl opens a CONNECT tunnel to files-tunnel.hop.test:80 and
	// sends its GET through it, to the plugin.
	wantCurl(t, "hello from static_file", "-p", "-x", "http://"+loop(muxp), "http://files-tunnel.hop.test/hello.txt")
}
