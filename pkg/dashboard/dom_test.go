package dashboard

import (
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// dom is a parsed page, for looking elements up by data-testid.
type dom struct{ root *html.Node }

func parseDOM(t *testing.T, s string) dom {
	t.Helper()
	n, err := html.Parse(strings.NewReader(s))
	if err != nil {
		t.Fatalf("parsing the DOM: %v", err)
	}
	return dom{n}
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

// all returns the elements under n that match, in document order.
func all(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

// byTestID returns the elements with data-testid id and, in pairs, the
// given attribute values ("data-proxy", "ssh").
func byTestID(n *html.Node, id string, kv ...string) []*html.Node {
	return all(n, func(n *html.Node) bool {
		if v, _ := attr(n, "data-testid"); v != id {
			return false
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if v, _ := attr(n, kv[i]); v != kv[i+1] {
				return false
			}
		}
		return true
	})
}

// text is the text content of n.
func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.TrimSpace(b.String())
}

// one returns the single element with data-testid id (and kv) under n,
// failing the test if there is not exactly one.
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
