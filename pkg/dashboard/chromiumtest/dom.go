package chromiumtest

import (
	"strings"

	"golang.org/x/net/html"
)

// ParseDOM parses the output of DumpDOM.
func ParseDOM(s string) (*html.Node, error) { return html.Parse(strings.NewReader(s)) }

// Attr returns the value of n's attribute key.
func Attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

// All returns the elements under n (n included) that match, in document
// order.
func All(n *html.Node, match func(*html.Node) bool) []*html.Node {
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

// ByTestID returns the elements under n with data-testid id and, given
// in pairs, the attribute values kv ("data-proxy", "ssh").
func ByTestID(n *html.Node, id string, kv ...string) []*html.Node {
	return All(n, func(n *html.Node) bool {
		if v, _ := Attr(n, "data-testid"); v != id {
			return false
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if v, _ := Attr(n, kv[i]); v != kv[i+1] {
				return false
			}
		}
		return true
	})
}

// Text is the text content of n, trimmed.
func Text(n *html.Node) string {
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
