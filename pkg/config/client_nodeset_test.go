package config

// --- nodeset: serverAddrs.

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// seventeenAddrs is one entry more than serverAddrs takes.
var seventeenAddrs = func() string {
	var b strings.Builder
	b.WriteString("serverAddrs = [")
	for i := range MaxServerAddrs + 1 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote("10.0.0." + strconv.Itoa(i+1) + ":7000"))
	}
	b.WriteString("]\n")
	return b.String()
}()

var nodesetClientCases = []errorCase{
	{name: "serverAddrs", toml: tokenLine + "serverAddrs = [\"10.0.0.1:7000\", \"hops2.example.com:7001\", \"[2001:db8::1]:7000\", \"_hops._tcp.example.com.:7000\"]\n"},
	{name: "serverAddrs from the environment", env: map[string]string{"HOP_TEST_NODE": "10.0.0.9"}, toml: tokenLine + "serverAddrs = [\"${HOP_TEST_NODE}:7000\"]\n"},
	{name: "serverAddrs empty is the default", toml: tokenLine + "serverAddrs = []\nserverAddr = \"hops.example.com\"\nserverPort = 7001\n"},
	{name: "serverAddrs with serverAddr and serverPort", toml: tokenLine + "serverAddr = \"127.0.0.1\"\nserverPort = 7000\nserverAddrs = [\"10.0.0.1:7000\", \"10.0.0.2:7000\"]\n",
		want: "hopc.toml:2: serverAddr: set together with serverAddrs (line 4); use one or the other: serverAddrs = [\"host:port\", ...] lists every hops node, serverAddr and serverPort name a single one\n" +
			"hopc.toml:3: serverPort: set together with serverAddrs (line 4); use one or the other: serverAddrs = [\"host:port\", ...] lists every hops node, serverAddr and serverPort name a single one"},
	{name: "serverAddrs with serverPort only", toml: tokenLine + "serverAddrs = [\"10.0.0.1:7000\"]\nserverPort = 7001\n",
		want: "hopc.toml:3: serverPort: set together with serverAddrs (line 2); use one or the other: serverAddrs = [\"host:port\", ...] lists every hops node, serverAddr and serverPort name a single one"},
	{name: "serverAddrs with an empty serverAddr", toml: tokenLine + "serverAddr = \"\"\nserverAddrs = [\"10.0.0.1:7000\"]\n",
		want: "hopc.toml:2: serverAddr: set together with serverAddrs (line 3); use one or the other: serverAddrs = [\"host:port\", ...] lists every hops node, serverAddr and serverPort name a single one"},
	{name: "serverAddrs bad entries", toml: tokenLine + "serverAddrs = [\n" +
		"  \"10.0.0.1\",\n" +
		"  \":7000\",\n" +
		"  \"10.0.0.1:0\",\n" +
		"  \"10.0.0.1:70000\",\n" +
		"  \"hops:http\",\n" +
		"  \"2001:db8::1\",\n" +
		"  \"2001:db8::1:7000\",\n" +
		"  \"10.0.0.300:7000\",\n" +
		"  \"my host:7000\",\n" +
		"  \"\",\n" +
		"  \"[fe80::1:7000\",\n" +
		"  \"hops:\",\n" +
		"  \"[hops.example.com]:7000\",\n" +
		"  \"hops:+7000\",\n" +
		"]\n",
		want: "hopc.toml:3: serverAddrs[0]: \"10.0.0.1\" has no port; write host:port, e.g. \"10.0.0.1:7000\"\n" +
			"hopc.toml:4: serverAddrs[1]: \":7000\" has no host; write host:port, e.g. \"10.0.0.1:7000\" or \"hops1.example.com:7000\"\n" +
			"hopc.toml:5: serverAddrs[2]: \"10.0.0.1:0\": port 0 is out of range; use 1-65535\n" +
			"hopc.toml:6: serverAddrs[3]: \"10.0.0.1:70000\": port 70000 is out of range; use 1-65535\n" +
			"hopc.toml:7: serverAddrs[4]: \"hops:http\": port \"http\" is not a number; write host:port with the bindPort of hops, e.g. \"10.0.0.1:7000\" or \"hops1.example.com:7000\"\n" +
			"hopc.toml:8: serverAddrs[5]: \"2001:db8::1\" is an IPv6 address without a port; write the address in brackets followed by :port, e.g. \"[2001:db8::1]:7000\"\n" +
			"hopc.toml:9: serverAddrs[6]: \"2001:db8::1:7000\" is an IPv6 address without a port; write the address in brackets followed by :port, e.g. \"[2001:db8::1]:7000\"\n" +
			"hopc.toml:10: serverAddrs[7]: \"10.0.0.300:7000\": \"10.0.0.300\" is not a valid IPv4 address; write four numbers 0-255 separated by dots, e.g. \"10.0.0.1:7000\"\n" +
			"hopc.toml:11: serverAddrs[8]: \"my host:7000\": \"my host\" is not a host name or IP address; use letters, digits, - and . (e.g. \"hops1.example.com:7000\")\n" +
			"hopc.toml:12: serverAddrs[9]: empty; write host:port, e.g. \"10.0.0.1:7000\" or \"hops1.example.com:7000\"\n" +
			"hopc.toml:13: serverAddrs[10]: \"[fe80::1:7000\" is not host:port (missing ']' in address); write host:port, e.g. \"10.0.0.1:7000\" or \"hops1.example.com:7000\"\n" +
			"hopc.toml:14: serverAddrs[11]: \"hops:\" has no port after the colon; write host:port, e.g. \"10.0.0.1:7000\" or \"hops1.example.com:7000\"\n" +
			"hopc.toml:15: serverAddrs[12]: \"[hops.example.com]:7000\": \"hops.example.com\" is not an IP address; brackets are for IPv6 addresses: write \"hops.example.com:7000\"\n" +
			"hopc.toml:16: serverAddrs[13]: \"hops:+7000\": port \"+7000\" is not a number; write host:port with the bindPort of hops, e.g. \"10.0.0.1:7000\" or \"hops1.example.com:7000\""},
	{name: "serverAddrs ambiguous IPv6", toml: tokenLine + "serverAddrs = [\"fe80::1::7000\"]\n",
		want: "hopc.toml:2: serverAddrs[0]: \"fe80::1::7000\" has too many colons; write an IPv6 address in brackets followed by :port, e.g. \"[2001:db8::1]:7000\""},
	{name: "serverAddrs duplicates", toml: tokenLine + "serverAddrs = [\n  \"HOPS.example.com:7000\",\n  \"hops.example.com.:07000\",\n  \"10.0.0.1:7000\",\n  \"[::ffff:10.0.0.1]:7000\",\n  \"10.0.0.1:7001\",\n  \"[2001:db8::1]:7000\",\n  \"[2001:DB8:0::1]:7000\",\n]\n",
		want: "hopc.toml:4: serverAddrs[1]: \"hops.example.com.:07000\" is the same node as serverAddrs[0] (line 3); list each hops node once\n" +
			"hopc.toml:6: serverAddrs[3]: \"[::ffff:10.0.0.1]:7000\" is the same node as serverAddrs[2] (line 5); list each hops node once\n" +
			"hopc.toml:9: serverAddrs[6]: \"[2001:DB8:0::1]:7000\" is the same node as serverAddrs[5] (line 8); list each hops node once"},
	{name: "serverAddrs too many", toml: tokenLine + seventeenAddrs,
		want: "hopc.toml:2: serverAddrs: has 17 entries; list at most 16 hops nodes (hopc keeps a session to each)"},
	{name: "serverAddrs not an array", toml: tokenLine + "serverAddrs = \"10.0.0.1:7000\"\n",
		want: "hopc.toml:2: serverAddrs: expected an array of strings, e.g. [\"a\", \"b\"], found a string"},
	{name: "serverAddrs of numbers", toml: tokenLine + "serverAddrs = [7000]\n",
		want: "hopc.toml:2: serverAddrs[0]: expected a string in double quotes, found an integer"},
	{name: "serverAddrs wrong case", toml: tokenLine + "serveraddrs = [\"10.0.0.1:7000\"]\n",
		want: "hopc.toml:2: serveraddrs: unknown key; did you mean serverAddrs?"},
}

func TestServerEndpoints(t *testing.T) {
	one, err := ParseClient("hopc.toml", []byte(tokenLine+"serverAddr = \"hops.example.com\"\nserverPort = 7001\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := one.ServerEndpoints(), []string{"hops.example.com:7001"}; !slices.Equal(got, want) {
		t.Errorf("serverAddr: ServerEndpoints() = %q, want %q", got, want)
	}
	v6 := DefaultClient()
	v6.ServerAddr = "2001:db8::1"
	if got, want := v6.ServerEndpoints(), []string{"[2001:db8::1]:7000"}; !slices.Equal(got, want) {
		t.Errorf("IPv6 serverAddr: ServerEndpoints() = %q, want %q", got, want)
	}

	// A list is used as written, and the single-server keys are cleared.
	many, err := ParseClient("hopc.toml", []byte(tokenLine+"serverAddrs = [\"10.0.0.2:7000\", \"hops.example.com:7001\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.2:7000", "hops.example.com:7001"}
	got := many.ServerEndpoints()
	if !slices.Equal(got, want) || !slices.Equal(many.ServerAddrs, want) {
		t.Errorf("serverAddrs: ServerEndpoints() = %q, ServerAddrs = %q, want %q", got, many.ServerAddrs, want)
	}
	if many.ServerAddr != "" || many.ServerPort != 0 {
		t.Errorf("serverAddrs: ServerAddr, ServerPort = %q, %d, want them cleared", many.ServerAddr, many.ServerPort)
	}
	got[0] = "changed:1"
	if many.ServerAddrs[0] != "10.0.0.2:7000" {
		t.Errorf("ServerEndpoints returned the config's own slice")
	}

	// serverAddrs = [] is the default: the single server.
	def, err := ParseClient("hopc.toml", []byte(tokenLine+"serverAddrs = []\n"))
	if err != nil {
		t.Fatal(err)
	}
	if def.ServerAddrs != nil || !slices.Equal(def.ServerEndpoints(), []string{"127.0.0.1:7000"}) {
		t.Errorf("serverAddrs = []: ServerAddrs = %#v, ServerEndpoints() = %q, want nil and 127.0.0.1:7000", def.ServerAddrs, def.ServerEndpoints())
	}
}

// TestValidateServerAddrs checks configs built in code: ServerAddr and
// ServerPort are not checked while ServerAddrs is in use, and its
// entries are.
func TestValidateServerAddrs(t *testing.T) {
	c := DefaultClient()
	c.Auth.Token = "0123456789abcdef"
	c.ServerAddr, c.ServerPort = "", 0
	c.ServerAddrs = []string{"10.0.0.1:7000", "10.0.0.2:7000"}
	if err := c.Validate(); err != nil {
		t.Errorf("ServerAddrs without ServerAddr: %v", err)
	}
	c.ServerAddrs = []string{"10.0.0.1:7000", "10.0.0.1:7000", "10.0.0.3"}
	checkErr(t, "", c.Validate(), "serverAddrs[1]: \"10.0.0.1:7000\" is the same node as serverAddrs[0]; list each hops node once\n"+
		"serverAddrs[2]: \"10.0.0.3\" has no port; write host:port, e.g. \"10.0.0.3:7000\"")
	c.ServerAddrs = nil
	checkErr(t, "", c.Validate(), "serverAddr: empty; write a host name or IP address\nserverPort: 0 is out of range; use 1-65535")
}

// TestMarshalRoundTripServerAddrs: a config with serverAddrs written back
// as TOML leaves out serverAddr and serverPort, and so parses again.
func TestMarshalRoundTripServerAddrs(t *testing.T) {
	cfg, err := ParseClient("hopc.toml", []byte(tokenLine+"serverAddrs = [\"10.0.0.1:7000\", \"[2001:db8::1]:7000\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := toml.Marshal(values(cfg))
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseClient("marshaled", b)
	if err != nil || !reflect.DeepEqual(values(back), values(cfg)) {
		t.Errorf("round trip: %v\n%s", err, b)
	}
}
