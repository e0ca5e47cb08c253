package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// curl runs curl with args (bounded; no proxy from the environment) and
// returns its stdout, its stderr and its exit code.
func curl(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "curl", append([]string{"-sS", "--max-time", "20"}, args...)...)
	for _, e := range os.Environ() {
		if k, _, _ := strings.Cut(e, "="); !strings.HasSuffix(strings.ToLower(k), "_proxy") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("curl: %v", err)
	}
	return out.String(), errb.String(), code
}

// wantCurl runs curl and fails unless it exits 0 with stdout want.
func wantCurl(t *testing.T, want string, args ...string) {
	t.Helper()
	out, errs, code := curl(t, args...)
	if code != 0 || out != want {
		t.Errorf("curl %s: exit %d, stdout %q, stderr %q; want exit 0 and %q", strings.Join(args, " "), code, out, errs, want)
	}
}

// testCert writes a self-signed certificate for 127.0.0.1 to dir.
func testCert(t *testing.T, dir string) (crt, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hop e2e"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	crt, key = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	writeFile(t, crt, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, key, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})))
	return crt, key
}

func pluginProxy(name string, remotePort int, plugin string) string {
	return fmt.Sprintf("\n[[proxies]]\nname = %q\ntype = \"tcp\"\nremotePort = %d\n[proxies.plugin]\n%s\n", name, remotePort, plugin)
}

// TestPlugins runs one hopc with every plugin, each on a tcp proxy of
// its own, and uses them with curl and Go clients as a user would. Every
// target is a loopback service the test starts.
func TestPlugins(t *testing.T) {
	dir := t.TempDir()

	// Backends.
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "web %s %s host=%s from=%s xff=%s proto=%s", r.Method, r.URL.Path, r.Host, r.Header.Get("X-From-Where"), r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"))
	}))
	defer web.Close()
	tlsWeb := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "tls web %s host=%s from=%s tls=%v", r.URL.Path, r.Host, r.Header.Get("X-From-Where"), r.TLS != nil)
	}))
	defer tlsWeb.Close()
	sock := filepath.Join(dir, "echo.sock")
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
			go func() { defer c.Close(); echo(c) }()
		}
	}()
	www := filepath.Join(dir, "www")
	os.Mkdir(www, 0o755)
	writeFile(t, filepath.Join(www, "index.txt"), "static hello")
	writeFile(t, filepath.Join(dir, "secret.txt"), "TOPSECRET")
	crt, key := testCert(t, dir)

	sp := freePort(t)
	ports := map[string]int{}
	for _, n := range []string{"unix", "socks", "socksauth", "httpproxy", "static", "https2http", "http2https"} {
		ports[n] = freePort(t)
	}
	cfg := pluginProxy("unix", ports["unix"], fmt.Sprintf("type = \"unix_domain_socket\"\nunixPath = %q", sock)) +
		pluginProxy("socks", ports["socks"], `type = "socks5"`) +
		pluginProxy("socksauth", ports["socksauth"], "type = \"socks5\"\nusername = \"alice\"\npassword = \"s3cret\"") +
		pluginProxy("httpproxy", ports["httpproxy"], "type = \"http_proxy\"\nhttpUser = \"bob\"\nhttpPassword = \"pw\"") +
		pluginProxy("static", ports["static"], fmt.Sprintf("type = \"static_file\"\nlocalPath = %q\nstripPrefix = \"static\"\nhttpUser = \"u\"\nhttpPassword = \"p\"", www)) +
		pluginProxy("https2http", ports["https2http"], fmt.Sprintf("type = \"https2http\"\nlocalAddr = %q\ncrtPath = %q\nkeyPath = %q\nhostHeaderRewrite = \"app.internal\"\nrequestHeaders.set.x-from-where = \"hop\"", web.Listener.Addr(), crt, key)) +
		pluginProxy("http2https", ports["http2https"], fmt.Sprintf("type = \"http2https\"\nlocalAddr = %q\nrequestHeaders.set.x-from-where = \"hop\"", tlsWeb.Listener.Addr()))
	hops := start(t, "hops", serverConfig(sp, ""))
	waitListening(t, loop(sp), 20*time.Second)
	hopc := start(t, "hopc", clientConfig(sp, cfg))
	for _, p := range ports {
		waitListening(t, loop(p), 20*time.Second)
	}

	t.Run("unix_domain_socket", func(t *testing.T) {
		waitProxy(t, loop(ports["unix"]), 10*time.Second)
	})
	webURL := web.URL + "/via"
	t.Run("socks5", func(t *testing.T) {
		want := "web GET /via host=" + web.Listener.Addr().String() + " from= xff= proto="
		wantCurl(t, want, "--socks5", loop(ports["socks"]), webURL)
		wantCurl(t, want, "--socks5-hostname", loop(ports["socks"]), webURL)
		wantCurl(t, want, "--socks5", loop(ports["socksauth"]), "--proxy-user", "alice:s3cret", webURL)
		if out, _, code := curl(t, "--socks5", loop(ports["socksauth"]), "--proxy-user", "alice:wrong", webURL); code == 0 {
			t.Errorf("socks5 with a wrong password: exit 0, %q", out)
		}
		if out, _, code := curl(t, "--socks5", loop(ports["socksauth"]), webURL); code == 0 {
			t.Errorf("socks5 without credentials to a server that requires them: exit 0, %q", out)
		}
	})
	t.Run("http_proxy", func(t *testing.T) {
		want := "web GET /via host=" + web.Listener.Addr().String() + " from= xff= proto="
		wantCurl(t, want, "-x", "http://bob:pw@"+loop(ports["httpproxy"]), webURL)
		wantCurl(t, want, "-p", "-x", "http://bob:pw@"+loop(ports["httpproxy"]), webURL) // CONNECT
		wantCurl(t, "tls web /t host="+tlsWeb.Listener.Addr().String()+" from= tls=true", "-k", "-x", "http://bob:pw@"+loop(ports["httpproxy"]), tlsWeb.URL+"/t")
		wantCurl(t, "407", "-o", "/dev/null", "-w", "%{http_code}", "-x", "http://"+loop(ports["httpproxy"]), webURL)
		wantCurl(t, "407", "-o", "/dev/null", "-w", "%{http_code}", "-x", "http://bob:nope@"+loop(ports["httpproxy"]), webURL)
	})
	t.Run("static_file", func(t *testing.T) {
		base := "http://" + loop(ports["static"])
		wantCurl(t, "static hello", "-u", "u:p", base+"/static/index.txt")
		wantCurl(t, "401", "-o", "/dev/null", "-w", "%{http_code}", base+"/static/index.txt")
		wantCurl(t, "401", "-o", "/dev/null", "-w", "%{http_code}", "-u", "u:wrong", base+"/static/index.txt")
		for _, p := range []string{"/static/../secret.txt", "/static/../../secret.txt", "/static/%2e%2e/secret.txt", "/static/..%2fsecret.txt"} {
			out, _, _ := curl(t, "--path-as-is", "-L", "-u", "u:p", "-w", " %{http_code}", base+p)
			if strings.Contains(out, "TOPSECRET") || strings.HasSuffix(out, " 200") {
				t.Errorf("%s escaped localPath: %q", p, out)
			}
		}
	})
	t.Run("https2http", func(t *testing.T) {
		wantCurl(t, "web GET /s host=app.internal from=hop xff=127.0.0.1 proto=https", "--cacert", crt, "https://"+loop(ports["https2http"])+"/s")
		if out, _, code := curl(t, "https://"+loop(ports["https2http"])+"/s"); code == 0 {
			t.Errorf("curl accepted the test certificate without --cacert: %q", out)
		}
	})
	t.Run("http2https", func(t *testing.T) {
		wantCurl(t, "tls web /h host="+loop(ports["http2https"])+" from=hop tls=true", "http://"+loop(ports["http2https"])+"/h")
	})

	// Both exit cleanly on SIGINT, with plugin streams having been open.
	if code := hopc.interrupt(15 * time.Second); code != 0 {
		t.Errorf("hopc exit code %d", code)
	}
	if code := hops.interrupt(15 * time.Second); code != 0 {
		t.Errorf("hops exit code %d", code)
	}
}

// TestPluginConfigRefused: hopc verify refuses plugins where they cannot
// work, with the file and line.
func TestPluginConfigRefused(t *testing.T) {
	cfg := clientConfig(7000, pluginProxy("dns", 6001, `type = "socks5"`)+pluginProxy("x", 6002, `type = "sock5"`))
	cfg = strings.Replace(cfg, "name = \"dns\"\ntype = \"tcp\"", "name = \"dns\"\ntype = \"udp\"", 1)
	path := writeConfig(t, "hopc", cfg)
	out, code := runBin(t, "hopc", "verify", "-c", path)
	if code == 0 {
		t.Fatalf("hopc verify accepted it:\n%s", out)
	}
	for _, want := range []string{
		path + ":13: proxies[0].plugin: a udp proxy carries UDP datagrams, and plugins serve TCP streams",
		path + ":21: proxies[1].plugin.type: \"sock5\" is not a plugin type; use one of: unix_domain_socket, socks5, http_proxy, static_file, https2http, http2https",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestPluginsOnSecretProxies: plugins serve stcp and xtcp proxies too,
// reached through visitors: socks5 with a password on stcp, http_proxy on
// xtcp.
func TestPluginsOnSecretProxies(t *testing.T) {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "web %s", r.URL.Path)
	}))
	defer web.Close()
	srvPort := freePort(t)
	start(t, "hops", serverConfig(srvPort, ""))
	waitListening(t, loop(srvPort), ready)
	owner := `
[[proxies]]
name = "sec-socks"
type = "stcp"
secretKey = "s3cret-key"
[proxies.plugin]
type = "socks5"
username = "alice"
password = "pw"

[[proxies]]
name = "p2p-proxy"
type = "xtcp"
secretKey = "s3cret-key"
[proxies.plugin]
type = "http_proxy"
`
	start(t, "hopc", withID(clientConfig(srvPort, owner), "owner"))
	sv, xv := freePort(t), freePort(t)
	visitor := fmt.Sprintf(`
[[visitors]]
name = "v-socks"
type = "stcp"
serverName = "sec-socks"
secretKey = "s3cret-key"
bindPort = %d

[[visitors]]
name = "v-proxy"
type = "xtcp"
serverName = "p2p-proxy"
secretKey = "s3cret-key"
bindPort = %d
`, sv, xv)
	start(t, "hopc", withID(clientConfig(srvPort, visitor), "visitor"))
	eventually(t, ready, "socks5 through the stcp visitor", func() bool {
		out, _, code := curl(t, "--max-time", "3", "--socks5", loop(sv), "--proxy-user", "alice:pw", web.URL+"/s")
		return code == 0 && out == "web /s"
	})
	if out, _, code := curl(t, "--socks5", loop(sv), "--proxy-user", "alice:no", web.URL+"/s"); code == 0 {
		t.Errorf("wrong password through the stcp visitor: exit 0, %q", out)
	}
	eventually(t, ready, "http_proxy through the xtcp visitor", func() bool {
		out, _, code := curl(t, "--max-time", "3", "-x", "http://"+loop(xv), web.URL+"/x")
		return code == 0 && out == "web /x"
	})
	wantCurl(t, "web /p", "-p", "-x", "http://"+loop(xv), web.URL+"/p")
}
