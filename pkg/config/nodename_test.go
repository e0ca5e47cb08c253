package config

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// --- scaling: nodeName (issue 13)

func TestNodeName(t *testing.T) {
	cfg, err := ParseServer("hops.toml", []byte(tokenLine+"nodeName = \"eu-1 (rack 7)\"\n"))
	checkErr(t, "hops.toml", err, "")
	if n, err := cfg.Node(); n != "eu-1 (rack 7)" || err != nil {
		t.Errorf("Node() = %q, %v; want the configured name", n, err)
	}

	// The default: the host name and bindPort.
	host, err := os.Hostname()
	if err != nil {
		t.Skipf("no host name: %v", err)
	}
	cfg, err = ParseServer("hops.toml", []byte(tokenLine+"bindPort = 7100\n"))
	checkErr(t, "hops.toml", err, "")
	if n, err := cfg.Node(); n != host+":7100" || err != nil {
		t.Errorf("Node() = %q, %v; want %q", n, err, host+":7100")
	}
	def := DefaultServer()
	if n, _ := def.Node(); n != host+":"+strconv.Itoa(def.BindPort) {
		t.Errorf("DefaultServer().Node() = %q", n)
	}

	for _, tt := range []struct{ line, want string }{
		{`nodeName = ""`, `hops.toml:2: nodeName: is empty; use 1-128 printable characters, e.g. nodeName = "hops-1", or remove the key for the default <hostname>:<bindPort>`},
		{`nodeName = "a\tb"`, `hops.toml:2: nodeName: "a\tb" has the unprintable character U+0009; use 1-128 printable characters, e.g. nodeName = "hops-1" (remove the key for the default <hostname>:<bindPort>)`},
		{`nodeName = "` + strings.Repeat("é", 129) + `"`, `hops.toml:2: nodeName: "` + strings.Repeat("é", 129) + `" is 129 characters long, more than 128; use 1-128 printable characters, e.g. nodeName = "hops-1" (remove the key for the default <hostname>:<bindPort>)`},
		{`nodeName = 7`, ""},
		{`nodename = "x"`, ""},
	} {
		_, err := ParseServer("hops.toml", []byte(tokenLine+tt.line+"\n"))
		if tt.want == "" {
			if err == nil {
				t.Errorf("%s accepted", tt.line)
			}
			continue
		}
		checkErr(t, "hops.toml", err, tt.want)
	}
	// 128 characters (not bytes) is the limit.
	_, err = ParseServer("hops.toml", []byte(tokenLine+`nodeName = "`+strings.Repeat("é", 128)+`"`+"\n"))
	checkErr(t, "hops.toml", err, "")

	// A config built in code is checked by Validate.
	c := DefaultServer()
	c.Auth.Token = "s3cret-s3cret"
	c.NodeName = "bad\x00name"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "nodeName") {
		t.Errorf("Validate with a NUL in nodeName = %v", err)
	}
}
