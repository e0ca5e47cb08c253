//go:build unix

package server

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/hopproxy/hop/pkg/protocol"
	"golang.org/x/sys/unix"
)

// TestOpenProxyOutOfDescriptors runs out of descriptors for real: with
// every descriptor the soft limit allows in use, a NewProxy is answered
// temporary, not port_not_allowed, and the server says it once.
func TestOpenProxyOutOfDescriptors(t *testing.T) {
	s := testServer(t)
	s.cfg.ProxyBindAddr = "127.0.0.1"
	var out logLines
	log := slog.New(slog.NewTextHandler(&out, nil))
	ss := &session{srv: s, clientID: "c1", log: log, proxies: map[string]*proxy{}}

	var orig unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count open descriptors: %v", err)
	}
	low := orig
	low.Cur = uint64(len(ents) + 64)
	if low.Cur >= orig.Max {
		t.Skipf("hard limit %d too low", orig.Max)
	}
	var held []*os.File
	release := func() {
		for _, f := range held {
			f.Close()
		}
		held = nil
		unix.Setrlimit(unix.RLIMIT_NOFILE, &orig)
	}
	defer release()
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := os.Open(os.DevNull)
		if errors.Is(err, syscall.EMFILE) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, f)
	}
	var resps []*protocol.NewProxyResp
	for i := range 3 {
		resps = append(resps, s.openProxy(ss, &protocol.NewProxy{Name: fmt.Sprintf("web%d", i), ProxyType: protocol.ProxyTCP, RemotePort: 0}))
	}
	release()
	for _, r := range resps {
		if r.Code != protocol.CodeTemporary || !strings.Contains(r.Error, "out of file descriptors") {
			t.Fatalf("out of descriptors: %s %q, want %s", r.Code, r.Error, protocol.CodeTemporary)
		}
	}
	if n := out.count("out of resources"); n != 1 {
		t.Fatalf("%d lines for 3 refusals:\n%s", n, out.String())
	}
	// With descriptors again the same request succeeds.
	r := s.openProxy(ss, &protocol.NewProxy{Name: "web", ProxyType: protocol.ProxyTCP})
	if r.Code != "" || r.RemotePort == 0 {
		t.Fatalf("after the descriptors came back: %+v", r)
	}
	s.closeProxy(s.proxies[proxyKey{ss.user, "web"}])
}
