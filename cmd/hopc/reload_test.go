package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hopproxy/hop/pkg/client"
	"github.com/hopproxy/hop/pkg/config"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

const reloadBase = `serverAddr = "127.0.0.1"
serverPort = 1
auth.token = "t"
`

func proxyTOML(name string, local int) string {
	return "\n[[proxies]]\nname = \"" + name + "\"\ntype = \"tcp\"\nlocalPort = " + strconv.Itoa(local) + "\nremotePort = 0\n"
}

// TestReloadFromFile: a good file is applied and summed up in one line; a
// file with an unknown key is refused with its file:line, logged, and the
// running proxies stay; a changed serverPort is reported for a restart.
func TestReloadFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hopc.toml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(reloadBase + proxyTOML("a", 22) + proxyTOML("c", 23))
	cfg, err := config.LoadClient(path)
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuf
	log := slog.New(slog.NewTextHandler(&out, nil))
	c, err := client.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	write(reloadBase + proxyTOML("a", 22) + proxyTOML("b", 24))
	res, err := reloadFromFile(ctx, c, path, log)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Added, []string{"proxy:b"}) || !slices.Equal(res.Removed, []string{"proxy:c"}) || res.Unchanged != 1 {
		t.Fatalf("result %+v", res)
	}
	if n := strings.Count(out.String(), `msg="config reloaded"`); n != 1 || !strings.Contains(out.String(), "added=[proxy:b] removed=[proxy:c] changed=[] unchanged=1") {
		t.Fatalf("%d summary lines:\n%s", n, out.String())
	}

	write(reloadBase + proxyTOML("a", 22) + "\nlocalPrt = 5\n")
	if _, err := reloadFromFile(ctx, c, path, log); err == nil || !strings.Contains(err.Error(), "hopc.toml:") {
		t.Fatalf("invalid file: %v, want an error naming hopc.toml:LINE", err)
	}
	if !strings.Contains(out.String(), `msg="reload refused" problem=`) || !strings.Contains(out.String(), "localPrt") {
		t.Fatalf("the refusal is not logged with its problem:\n%s", out.String())
	}

	// The previous reload's proxies are still the running ones.
	write(reloadBase + proxyTOML("a", 22) + proxyTOML("b", 24))
	if res, err := reloadFromFile(ctx, c, path, log); err != nil || res.Unchanged != 2 || len(res.Added)+len(res.Removed)+len(res.Changed) != 0 {
		t.Fatalf("after a refused reload: %+v, %v", res, err)
	}

	write(strings.Replace(reloadBase, "serverPort = 1", "serverPort = 2", 1) + proxyTOML("a", 22) + proxyTOML("b", 24))
	if res, err := reloadFromFile(ctx, c, path, log); err != nil || !slices.Equal(res.NeedsRestart, []string{"serverPort"}) {
		t.Fatalf("serverPort change: %+v, %v", res, err)
	}
	if !strings.Contains(out.String(), "apply only when hopc restarts") {
		t.Fatalf("no restart warning:\n%s", out.String())
	}

	os.Remove(path)
	if _, err := reloadFromFile(ctx, c, path, log); err == nil {
		t.Fatal("a missing file was applied")
	}
}
