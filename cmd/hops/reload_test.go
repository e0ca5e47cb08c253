package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/server"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestReloadFile: reload applies a good file and refuses a bad one, with
// each problem's file:line, leaving the running config as it was.
func TestReloadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hops.toml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const base = "auth.token = \"reload-test-token-0123456789\"\nbindAddr = \"127.0.0.1\"\n"
	write(base)
	cfg, err := config.LoadServer(path)
	if err != nil {
		t.Fatal(err)
	}
	var out lockedBuf
	log := slog.New(slog.NewTextHandler(&out, nil))
	srv, err := server.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	write(base + "allowPorts = [{ single = 6000 }]\nbindPort = 7100\n")
	reload(path, srv, log)
	for _, want := range []string{`msg="config reloaded" applied=allowPorts`, `msg="bindPort changed: needs a restart"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, out.String())
		}
	}
	write(base + "maxProxiesPerClient = 0\nallowPorts = [{ start = 1 }]\n")
	reload(path, srv, log)
	for _, want := range []string{
		`msg="config reload refused" problem="` + path + `:3: maxProxiesPerClient: 0 is not allowed`,
		`msg="config reload refused" problem="` + path + `:4: allowPorts[0]: has start but no end`,
		`msg="config reload refused: the running config stays; fix the file and send SIGHUP again"`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, out.String())
		}
	}
	os.Remove(path)
	reload(path, srv, log)
	if !strings.Contains(out.String(), `msg="config reload refused" error=`) {
		t.Errorf("a missing file was not refused:\n%s", out.String())
	}
	// The refused files changed nothing: the same good file again has
	// nothing new to apply.
	write(base + "allowPorts = [{ single = 6000 }]\n")
	reload(path, srv, log)
	if !strings.Contains(out.String(), `msg="config reloaded: nothing to apply" needs_restart=0`) {
		t.Errorf("log:\n%s", out.String())
	}
}
