package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hopproxy/hop/pkg/frpconf"
)

// TestMigrateThenVerify runs hopc migrate on an frpc file and hopc verify
// on what it printed, as a user would.
func TestMigrateThenVerify(t *testing.T) {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"FRPCONF_DIR": dir, "FRPCONF_TOKEN": "migrate-test-token-0123456789", "FRPCONF_ADMIN_PASSWORD": "admin-pass",
		"FRPCONF_HTTP_PASSWORD": "http-pass", "FRPCONF_GROUP_KEY": "group-key", "FRPCONF_SECRET": "secret-key-123",
	} {
		t.Setenv(k, v)
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"migrate", "../../pkg/frpconf/testdata/frpc_full.toml"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "# proxies[0].transport.useEncryption (line ") {
		t.Errorf("the output lacks the comment on useEncryption:\n%s", out.String())
	}
	conf := filepath.Join(dir, "hopc.toml")
	if err := os.WriteFile(conf, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"verify", "-c", conf}, &out); err != nil {
		t.Fatalf("hopc verify of the migrated file: %v", err)
	}
	if !strings.Contains(out.String(), ": OK (12 proxies, 2 visitors)") {
		t.Errorf("hopc verify printed %q", out.String())
	}
}

func TestMigrateErrors(t *testing.T) {
	dir := t.TempDir()
	typo := filepath.Join(dir, "frpc.toml")
	if err := os.WriteFile(typo, []byte("serverAddr = \"a\"\n\nserverPrt = 7000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ini := filepath.Join(dir, "frpc.ini")
	if err := os.WriteFile(ini, []byte("[common]\nserver_addr = a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args   []string
		target error
		want   string
	}{
		{[]string{"migrate", typo}, frpconf.ErrUnknownKey, "line 3: serverPrt"},
		{[]string{"migrate", ini}, frpconf.ErrINI, "frpc verify"},
		{[]string{"migrate", filepath.Join(dir, "frpc.conf")}, frpconf.ErrFormat, ".toml, .yaml, .yml or .json"},
		{[]string{"migrate"}, nil, "usage: hopc migrate FILE"},
		{[]string{"migrate", typo, "extra"}, nil, "usage: hopc migrate FILE"},
	} {
		var out bytes.Buffer
		err := run(context.Background(), c.args, &out)
		if err == nil || (c.target != nil && !errors.Is(err, c.target)) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want %v with %q", c.args, err, c.target, c.want)
		}
		if out.Len() != 0 {
			t.Errorf("%v: printed %q with the error", c.args, out.String())
		}
	}
}
