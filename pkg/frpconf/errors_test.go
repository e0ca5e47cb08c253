package frpconf

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// errorCases are inputs Convert refuses, with the sentinel error and the
// texts the message must hold. They seed FuzzConvert.
var errorCases = []struct {
	name   string
	f      Format
	side   Side
	in     string
	target error
	want   []string
}{
	{"toml typo", TOML, Client, "serverAddr = \"a\"\nserverAdr = \"b\"\n", ErrUnknownKey, []string{"line 2: serverAdr:", "did you mean serverAddr?"}},
	{"toml proxy typo", TOML, Client, "[[proxies]]\nname = \"a\"\ntype = \"tcp\"\nremotePrt = 1\n", ErrUnknownKey, []string{"line 4: proxies[0].remotePrt:", "did you mean remotePort?"}},
	{"toml table typo", TOML, Client, "[transprt]\nprotocol = \"tcp\"\n", ErrUnknownKey, []string{"line 1: transprt:", "did you mean transport?"}},
	{"yaml nested typo", YAML, Client, "transport:\n  heartbeatIntervl: 3\n", ErrUnknownKey, []string{"line 2: transport.heartbeatIntervl:", "did you mean heartbeatInterval?"}},
	{"json typo in entry", JSON, Client, "{\n\"proxies\": [\n {\"name\": \"a\",\n  \"typ\": \"tcp\"}]}\n", ErrUnknownKey, []string{"line 4: proxies[0].typ:", "did you mean type?"}},
	{"server key in client file", TOML, Client, "bindPort = 7000\n", ErrUnknownKey, []string{"line 1: bindPort:", "a key of frps, not of frpc", "hops migrate"}},
	{"two unknown keys", TOML, Server, "bindPrt = 1\nvhostHTTPPrt = 2\n", ErrUnknownKey, []string{"line 1: bindPrt:", "line 2: vhostHTTPPrt:"}},
	{"legacy name", TOML, Client, "server_addr = \"a\"\n", ErrUnknownKey, []string{"line 1: server_addr:", "did you mean serverAddr?"}},
	{"wrong type", TOML, Client, "[[proxies]]\nname = \"a\"\nremotePort = \"6000\"\n", ErrValue, []string{"line 3: proxies[0].remotePort:", `the string "6000"`, "an integer"}},
	{"yaml null", YAML, Client, "serverAddr:\n", ErrValue, []string{"line 1: serverAddr:", "null"}},
	{"map of numbers", YAML, Client, "metadatas:\n  a: 1\n", ErrValue, []string{"line 2: metadatas.a:", "a string"}},
	{"other template", TOML, Client, "serverAddr = \"{{ .Envs.A | default \\\"x\\\" }}\"\n", ErrValue, []string{"line 1: serverAddr:", "cannot be converted"}},
	{"template outside a string", TOML, Client, "serverPort = {{ .Envs.PORT }}\n", ErrSyntax, []string{"line 1", "templates"}},
	{"negative seconds", TOML, Client, "transport.dialServerTimeout = -5\n", ErrValue, []string{"line 1: transport.dialServerTimeout:", "negative"}},
	{"ini", TOML, Client, "[common]\nserver_addr = 1.2.3.4\n", ErrINI, []string{"[common]", "frpc verify"}},
	{"bad toml", TOML, Client, "serverAddr = \n", ErrSyntax, []string{"line 1"}},
	{"bad json", JSON, Server, "{\"bindPort\": 7000,\n}", ErrSyntax, []string{"line 2"}},
	{"json array", JSON, Server, "[1]", ErrSyntax, []string{"not a JSON object"}},
	{"json trailing", JSON, Server, "{} {}", ErrSyntax, []string{"after the end"}},
	{"yaml dup", YAML, Server, "bindPort: 1\nbindPort: 2\n", ErrSyntax, []string{"line 2"}},
	{"yaml list", YAML, Server, "- 1\n", ErrSyntax, []string{"not a mapping"}},
	{"plugin as a string", TOML, Client, "[[proxies]]\nname = \"a\"\nplugin = \"socks5\"\n", ErrValue, []string{"line 3: proxies[0].plugin:", "a table"}},
	{"merge of a scalar", YAML, Client, "a: &a 1\nuser: x\n<<: *a\n", ErrSyntax, []string{"merge key"}},
	{"toml date", TOML, Client, "serverAddr = 1979-05-27\n", ErrValue, []string{"line 1: serverAddr:"}},
	{"format", "ini", Server, "", ErrFormat, []string{"toml, yaml or json"}},
}

func TestConvertErrors(t *testing.T) {
	for _, c := range errorCases {
		t.Run(c.name, func(t *testing.T) {
			out, rep, err := Convert([]byte(c.in), c.f, c.side)
			if !errors.Is(err, c.target) {
				t.Fatalf("got %v (output %q), want %v", err, out, c.target)
			}
			if out != nil || rep != nil {
				t.Errorf("an output with an error: %q", out)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestFormatOf(t *testing.T) {
	for name, want := range map[string]Format{"a.toml": TOML, "b.YAML": YAML, "c.yml": YAML, "/x/d.json": JSON} {
		if f, err := FormatOf(name); err != nil || f != want {
			t.Errorf("%s: %v %v, want %v", name, f, err, want)
		}
	}
	if _, err := FormatOf("frpc.ini"); !errors.Is(err, ErrINI) || !strings.Contains(err.Error(), "TOML") {
		t.Errorf("frpc.ini: %v", err)
	}
	if _, _, err := ConvertFile(filepath.Join(t.TempDir(), "none.toml"), Client); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
	if _, err := FormatOf("frpc.conf"); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), `".conf"`) {
		t.Errorf("frpc.conf: %v", err)
	}
}

// convertCases are small inputs with the TOML they must become (the
// comments left out).
var convertCases = []struct {
	name string
	f    Format
	side Side
	in   string
	want string
}{
	{"env and literal dollar", TOML, Client,
		"auth.token = \"{{ .Envs.FRP_TOKEN }}\"\nuser = \"{{- .Envs.U -}}x\"\n[[proxies]]\nname = \"w\"\ntype = \"http\"\nrequestHeaders.set.x-a = \"${HOME} {{ .Envs.B }}\"\n",
		"user = \"${U}x\"\n[auth]\ntoken = \"${FRP_TOKEN}\"\n[[proxies]]\nname = \"w\"\ntype = \"http\"\nrequestHeaders.set = { x-a = \"$${HOME} ${B}\" }\n"},
	{"durations", TOML, Client,
		"transport.heartbeatInterval = 5\ntransport.heartbeatTimeout = 0\ntransport.tcpMuxKeepaliveInterval = -1\ntransport.dialServerKeepalive = -1\n[[visitors]]\nname = \"v\"\ntype = \"xtcp\"\nmaxRetriesAnHour = 60\n",
		"[heartbeat]\ninterval = \"5s\"\ntimeout = \"90s\"\n[mux]\nkeepaliveInterval = \"0s\"\n[transport]\ntcpKeepalive.idle = \"0s\"\n[[visitors]]\nname = \"v\"\ntype = \"xtcp\"\nretryInterval = \"1m\"\n"},
	{"server renames", YAML, Server,
		"maxPortsPerClient: 10\nvhostHTTPTimeout: 90\ntransport:\n  tcpKeepalive: 30\n  heartbeatTimeout: -1\n",
		"maxProxiesPerClient = 10\nvhostHTTPTimeout = \"90s\"\n[transport]\ntcpKeepalive.idle = \"30s\"\n[heartbeat]\ntimeout = \"0s\"\n"},
	{"yaml anchors and merge keys", YAML, Client,
		"proxies:\n  - &base\n    name: a\n    type: tcp\n    localPort: 22\n    remotePort: 6000\n  - <<: *base\n    name: b\n    remotePort: 6001\n",
		"[[proxies]]\nname = \"a\"\ntype = \"tcp\"\nlocalPort = 22\nremotePort = 6000\n[[proxies]]\nname = \"b\"\ntype = \"tcp\"\nremotePort = 6001\nlocalPort = 22\n"},
	{"json quoting", JSON, Client,
		"{\"proxies\": [{\"name\": \"q\", \"type\": \"http\", \"customDomains\": [\"a.example.com\"], \"requestHeaders\": {\"set\": {\"X.Odd Name\": \"tab\\there \\\"q\\\"\"}}}]}",
		"[[proxies]]\nname = \"q\"\ntype = \"http\"\ncustomDomains = [\"a.example.com\"]\nrequestHeaders.set = { \"X.Odd Name\" = \"tab\\there \\\"q\\\"\" }\n"},
}

func stripComments(out []byte) string {
	var b strings.Builder
	for _, l := range strings.Split(string(out), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

func TestConvertValues(t *testing.T) {
	for _, c := range convertCases {
		t.Run(c.name, func(t *testing.T) {
			out, _, err := Convert([]byte(c.in), c.f, c.side)
			if err != nil {
				t.Fatal(err)
			}
			if got := stripComments(out); got != c.want {
				t.Errorf("got\n%s\nwant\n%s", got, c.want)
			}
			var m map[string]any
			if err := toml.Unmarshal(out, &m); err != nil {
				t.Errorf("not TOML: %v", err)
			}
		})
	}
}

// TestNotes checks the comments of keys hop has no equivalent for.
func TestNotes(t *testing.T) {
	out, rep, err := Convert([]byte("maxPortsPerClient = 0\nkcpBindPort = 7000\n"), TOML, Server)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"# maxPortsPerClient (line 1) not converted: frp's 0 is no limit",
		"# kcpBindPort (line 2) not converted: hop connects over TCP with TLS only",
	} {
		if !strings.Contains(string(out), w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if n := len(rep.Commented()); n != 2 {
		t.Errorf("%d keys commented, want 2", n)
	}
}
