package frpconf

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/pelletier/go-toml/v2"
)

// inputs are the frp files of testdata, by side. pending ones use keys
// that hop has only once other branches are merged (see TestTCPMuxAndVhostOutputsVerify).
var inputs = map[Side][]string{
	Client: {"frpc_full.toml", "frpc_more.yaml", "frpc_tokensource.json", "frpc_tcpmux.toml", "frpc_vhost_plugins.toml"},
	Server: {"frps_full.json", "frps_tokensource.yaml", "frps_tcpmux.toml"},
}

func convertFile(t *testing.T, name string, side Side) ([]byte, *Report) {
	t.Helper()
	out, rep, err := ConvertFile(filepath.Join("testdata", name), side)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out, rep
}

var indexRE = regexp.MustCompile(`\[[0-9]+\]`)

func generic(key string) string { return indexRE.ReplaceAllString(key, "[]") }

// readKeys reads a list of key paths, one a line, # for comments.
func readKeys(t *testing.T, name string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var keys []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			keys = append(keys, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

// lookupTOML returns the value at hop's key path in a decoded document.
func lookupTOML(doc map[string]any, path string) (any, bool) {
	var cur any = doc
	for _, seg := range strings.Split(indexRE.ReplaceAllStringFunc(path, func(s string) string { return "." + s }), ".") {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[seg]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(strings.Trim(seg, "[]"))
			if err != nil || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// TestExampleKeysCovered checks that the inputs of testdata use every key
// of frp's conf/frpc_full_example.toml and frps_full_example.toml, and that
// each is converted (the output has hop's key) or commented.
func TestExampleKeysCovered(t *testing.T) {
	for side, list := range map[Side]string{Client: "frpc_example_keys.txt", Server: "frps_example_keys.txt"} {
		seen := make(map[string]bool)
		for _, name := range inputs[side] {
			out, rep := convertFile(t, name, side)
			var doc map[string]any
			if err := toml.Unmarshal(out, &doc); err != nil {
				t.Fatalf("%s: the output is not TOML: %v\n%s", name, err, out)
			}
			for _, k := range rep.Keys {
				seen[generic(k.Key)] = true
				if k.Unmapped {
					t.Errorf("%s:%d: %s: pkg/config's frp table has nothing for it", name, k.Line, k.Key)
				}
				switch {
				case k.To != "":
					if _, ok := lookupTOML(doc, k.To); !ok {
						t.Errorf("%s:%d: %s: reported as converted to %s, which the output lacks", name, k.Line, k.Key, k.To)
					}
				case k.Note == "":
					t.Errorf("%s:%d: %s: neither converted nor explained", name, k.Line, k.Key)
				default:
					if !commented(out, k.Key) {
						t.Errorf("%s:%d: %s: not converted, and no comment of the output names it", name, k.Line, k.Key)
					}
				}
			}
		}
		for _, k := range readKeys(t, list) {
			if !seen[k] {
				t.Errorf("%s: frp's key %s is in none of the inputs %v", list, k, inputs[side])
			}
		}
	}
}

func commented(out []byte, key string) bool {
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "#") && strings.Contains(l, key+" (line ") {
			return true
		}
	}
	return false
}

// TestEverySchemaKeyMapped checks that pkg/config's table (or hop's own
// key of the same name) says what becomes of each of frp's keys.
func TestEverySchemaKeyMapped(t *testing.T) {
	for side, keys := range schemas {
		c := &converter{side: side}
		for k, kd := range keys {
			if kd == kTables && strings.HasSuffix(k, "s") && c.tables[k+"[]"] {
				continue
			}
			if k == "proxies" || k == "visitors" {
				continue
			}
			if _, _, ok := c.lookup(k); !ok {
				t.Errorf("%s: frp's %s: hop neither has it nor explains it in pkg/config/frp.go", side, k)
			}
		}
	}
}

// setEnv sets the variables the inputs refer to, with the files they
// name.
func setEnv(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	page := filepath.Join(dir, "404.html")
	if err := os.WriteFile(page, []byte("<h1>not here</h1>"), 0o644); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"FRPCONF_DIR": dir, "FRPCONF_TOKEN": "migrate-test-token-0123456789", "FRPCONF_ADMIN_PASSWORD": "admin-pass",
		"FRPCONF_HTTP_PASSWORD": "http-pass", "FRPCONF_GROUP_KEY": "group-key", "FRPCONF_SECRET": "secret-key-123",
		"FRPCONF_CERT": cert, "FRPCONF_KEY": key, "FRPCONF_404": page,
	} {
		t.Setenv(k, v)
	}
}

func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hop.internal"}, DNSNames: []string{"hop.internal"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func parse(side Side, name string, out []byte) error {
	if side == Client {
		_, err := config.ParseClient(name, out)
		return err
	}
	_, err := config.ParseServer(name, out)
	return err
}

// TestOutputsVerify loads each output as hopc verify and hops verify do.
func TestOutputsVerify(t *testing.T) {
	setEnv(t)
	for side, name := range map[Side][]string{Client: {"frpc_full.toml", "frpc_more.yaml"}, Server: {"frps_full.json"}} {
		for _, n := range name {
			out, _ := convertFile(t, n, side)
			if err := parse(side, n+".hop.toml", out); err != nil {
				t.Errorf("%s: the output does not pass %s verify:\n%v\n%s", n, side, err, out)
			}
		}
	}
	// frp's auth.tokenSource has no equivalent: the one problem left is
	// the token, which the comment tells how to set.
	for side, n := range map[Side]string{Client: "frpc_tokensource.json", Server: "frps_tokensource.yaml"} {
		out, _ := convertFile(t, n, side)
		var ce *config.Error
		if err := parse(side, n+".hop.toml", out); !errors.As(err, &ce) || len(ce.Problems) != 1 || ce.Problems[0].Key != "auth.token" {
			t.Errorf("%s: want only auth.token missing, got %v", n, err)
		}
		if !strings.Contains(string(out), `write auth.token = "${HOP_TOKEN}"`) {
			t.Errorf("%s: the output does not say how to set the token:\n%s", n, out)
		}
	}
}

// TestTCPMuxAndVhostOutputsVerify loads the outputs of the inputs with
// tcpmux proxies and tcpmuxHTTPConnectPort, and with plugins and
// load-balancing groups on http and https proxies.
func TestTCPMuxAndVhostOutputsVerify(t *testing.T) {
	setEnv(t)
	for _, c := range []struct {
		side Side
		name string
	}{
		{Client, "frpc_tcpmux.toml"},
		{Server, "frps_tcpmux.toml"},
		{Client, "frpc_vhost_plugins.toml"},
	} {
		out, _ := convertFile(t, c.name, c.side)
		if err := parse(c.side, c.name+".hop.toml", out); err != nil {
			t.Errorf("%s: the output does not pass %s verify:\n%v", c.name, c.side, err)
		}
	}
}

// TestEverySchemaKeyConverts converts a document with each of frp's keys
// alone (a value of its type) and checks that the key is converted or
// commented, and that the output is TOML with hop's keys only.
func TestEverySchemaKeyConverts(t *testing.T) {
	sample := map[kind]any{
		kString: "x", kInt: int64(5), kBool: true, kStrings: []string{"x"},
		kMap: map[string]any{"a": "b"}, kBoolMap: map[string]any{"a": true},
	}
	for side, keys := range schemas {
		for k, kd := range keys {
			if kd == kTables {
				continue // its entries' keys are tested one by one
			}
			doc := map[string]any{}
			set(doc, strings.Split(k, "."), sample[kd])
			if k == "proxies[].plugin.type" {
				set(doc, strings.Split(k, "."), "socks5")
			}
			in, err := toml.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			out, rep, err := Convert(in, TOML, side)
			if err != nil {
				t.Errorf("%s %s: %v\n%s", side, k, err, in)
				continue
			}
			found := false
			for _, r := range rep.Keys {
				if generic(r.Key) == k || strings.HasPrefix(generic(r.Key), k+"[]") {
					found = true
					if r.To == "" && r.Note == "" || r.Unmapped {
						t.Errorf("%s %s: %+v", side, k, r)
					}
				}
			}
			if !found {
				t.Errorf("%s %s: not in the report %+v", side, k, rep.Keys)
			}
			var m map[string]any
			if err := toml.Unmarshal(out, &m); err != nil {
				t.Errorf("%s %s: output not TOML: %v\n%s", side, k, err, out)
				continue
			}
			checkHopKeys(t, side, m, "")
		}
	}
}

// set puts v at path in doc; "x[]" is an array of one table.
func set(doc map[string]any, path []string, v any) {
	for i, seg := range path {
		last := i == len(path)-1
		if name, ok := strings.CutSuffix(seg, "[]"); ok {
			arr, _ := doc[name].([]map[string]any)
			if arr == nil {
				arr = []map[string]any{{}}
				doc[name] = arr
			}
			doc = arr[0]
			continue
		}
		if last {
			doc[seg] = v
			return
		}
		next, _ := doc[seg].(map[string]any)
		if next == nil {
			next = map[string]any{}
			doc[seg] = next
		}
		doc = next
	}
}

// frp's heartbeat timeout defaults to 90 s, hop's to 30 s: an input that
// sets only frp's common 30 s interval gets frp's timeout too, and
// verifies; one that sets both keeps its own.
func TestHeartbeatTimeoutDefault(t *testing.T) {
	const head = "serverAddr = \"h\"\nauth.token = \"migrate-test-token-0123456789\"\n"
	for _, c := range []struct{ in, want string }{
		{head + "transport.heartbeatInterval = 30\n", "interval = \"30s\"\ntimeout = \"90s\"\n"},
		{head + "transport.heartbeatInterval = 5\ntransport.heartbeatTimeout = 20\n", "interval = \"5s\"\ntimeout = \"20s\"\n"},
	} {
		out, _, err := Convert([]byte(c.in), TOML, Client)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), c.want) {
			t.Errorf("%q gave\n%s\nwant it to contain %q", c.in, out, c.want)
		}
		if err := parse(Client, "out.toml", out); err != nil {
			t.Errorf("%q: the output does not verify: %v", c.in, err)
		}
	}
}
