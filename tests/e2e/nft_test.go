package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/hopproxy/hop/tests/netlab"
)

// The P2P cells measure paths by nftables counters in the lab's
// namespaces, not by hop's own logs.

// applyNft loads an nftables ruleset in h's namespace.
func applyNft(t *testing.T, h *netlab.Host, ruleset string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.nft")
	if err := os.WriteFile(path, []byte(ruleset), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := h.Run(context.Background(), "nft", "-f", path); err != nil {
		t.Fatalf("nft -f in %s: %v: %s", h.Name(), err, out)
	}
}

var counterBytesRE = regexp.MustCompile(`bytes (\d+)`)

// nftCounter reads the bytes of a named nftables counter in h's namespace.
func nftCounter(t *testing.T, h *netlab.Host, family, table, name string) int64 {
	t.Helper()
	out, err := h.Run(context.Background(), "nft", "list", "counter", family, table, name)
	if err != nil {
		t.Fatal(err)
	}
	m := counterBytesRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("counter %s %s %s: no byte count in %q", family, table, name, out)
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}
