package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMigrateThenVerify runs hops migrate on an frps file and hops verify
// on what it printed.
func TestMigrateThenVerify(t *testing.T) {
	dir := t.TempDir()
	frps := filepath.Join(dir, "frps.yaml")
	if err := os.WriteFile(frps, []byte(`bindPort: 7000
vhostHTTPPort: 8080
vhostHTTPTimeout: 30
auth:
  token: "{{ .Envs.FRPCONF_TOKEN }}"
transport:
  heartbeatTimeout: 90
  maxPoolCount: 5
allowPorts:
  - start: 6000
    end: 6100
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FRPCONF_TOKEN", "migrate-test-token-0123456789")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"migrate", frps}, &out); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`vhostHTTPTimeout = "30s"`, `token = "${FRPCONF_TOKEN}"`, "# transport.maxPoolCount (line 8) not converted"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("the output lacks %q:\n%s", w, out.String())
		}
	}
	conf := filepath.Join(dir, "hops.toml")
	if err := os.WriteFile(conf, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"verify", "-c", conf}, &out); err != nil {
		t.Fatalf("hops verify of the migrated file: %v", err)
	}
	if !strings.Contains(out.String(), ": OK") {
		t.Errorf("hops verify printed %q", out.String())
	}
}
