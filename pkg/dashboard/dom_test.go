package dashboard

import (
	"testing"

	"github.com/hopproxy/hop/pkg/dashboard/chromiumtest"
	"golang.org/x/net/html"
)

var (
	all      = chromiumtest.All
	attr     = chromiumtest.Attr
	byTestID = chromiumtest.ByTestID
	text     = chromiumtest.Text
)

// dom is a parsed page, for looking elements up by data-testid.
type dom struct{ root *html.Node }

func parseDOM(t *testing.T, s string) dom {
	t.Helper()
	n, err := chromiumtest.ParseDOM(s)
	if err != nil {
		t.Fatalf("parsing the DOM: %v", err)
	}
	return dom{n}
}

// one returns the single element with data-testid id (and kv) under
// under (the whole page when nil), failing the test if there is not
// exactly one.
func (d dom) one(t *testing.T, under *html.Node, id string, kv ...string) *html.Node {
	t.Helper()
	if under == nil {
		under = d.root
	}
	ns := byTestID(under, id, kv...)
	if len(ns) != 1 {
		t.Fatalf("%d elements with data-testid=%q %v, want 1", len(ns), id, kv)
	}
	return ns[0]
}
