package config

import (
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// index records where each key of a TOML document is, by key path:
// "bindPort", "transport.tls.certFile", "proxies[1].remotePort",
// "allowPorts[0].start". Tables and array elements have entries too
// ("transport.tls", "proxies[1]", "allowPorts[0]"), so that a missing key can
// be reported at the header of the table that should hold it.
type index struct {
	nl      []int            // offsets of '\n' in the document
	byPath  map[string]entry // key path → entry
	byPos   map[int]string   // offset of a key or value → key path
	entries []entry          // document order
}

type entry struct {
	path  string
	line  int           // line of the key (or header, or element)
	off   int           // document offset of the same
	kind  unstable.Kind // value kind; Table/ArrayTable for headers
	text  string        // the value of a string, the digits of a number, "true"/"false"; "" otherwise
	under string        // for a key/value: the table whose header it is written below ("" at the top level)
}

// buildIndex parses data. It returns the parser's error for a document that
// is not valid TOML syntax.
func buildIndex(data []byte) (*index, error) {
	ix := &index{byPath: make(map[string]entry), byPos: make(map[int]string)}
	for i, c := range data {
		if c == '\n' {
			ix.nl = append(ix.nl, i)
		}
	}
	arrays := make(map[string]int) // array-table path → elements so far
	var p unstable.Parser
	p.Reset(data)
	prefix := ""
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.KeyValue:
			ix.keyValue(prefix, prefix, e)
		case unstable.Table, unstable.ArrayTable:
			// Resolve the header: a part that names an array of tables
			// refers to its last element.
			path, first, line := "", -1, 0
			it := e.Key()
			for it.Next() {
				k := it.Node()
				if first < 0 {
					first = ix.offset(k)
					line = ix.lineAt(first)
				}
				path = join(path, string(k.Data))
				if n, ok := arrays[path]; ok && (e.Kind == unstable.Table || !it.IsLast()) {
					path += "[" + strconv.Itoa(n-1) + "]"
				}
			}
			ix.add(first, entry{path: path, line: line, off: first, kind: e.Kind})
			if e.Kind == unstable.ArrayTable {
				// An element of an array of tables is a table.
				n := arrays[path]
				arrays[path] = n + 1
				path += "[" + strconv.Itoa(n) + "]"
				ix.add(-1, entry{path: path, line: line, off: first, kind: unstable.Table})
			}
			prefix = path
		}
	}
	if err := p.Error(); err != nil {
		return nil, err
	}
	return ix, nil
}

// add records en unless its path is already known (the first mention of a
// table wins), and maps the document offset off to it.
func (ix *index) add(off int, en entry) {
	if off >= 0 {
		if _, ok := ix.byPos[off]; !ok {
			ix.byPos[off] = en.path
		}
	}
	if _, ok := ix.byPath[en.path]; ok {
		return
	}
	ix.byPath[en.path] = en
	ix.entries = append(ix.entries, en)
}

func (ix *index) keyValue(under, prefix string, kv *unstable.Node) {
	path, first, line := prefix, -1, 0
	it := kv.Key()
	for it.Next() {
		k := it.Node()
		if first < 0 {
			first = ix.offset(k)
			line = ix.lineAt(first)
		}
		path = join(path, string(k.Data))
		if !it.IsLast() {
			ix.add(-1, entry{path: path, line: line, off: first, kind: unstable.Table})
		}
	}
	v := kv.Value()
	if v == nil {
		return
	}
	en := entry{path: path, line: line, off: first, kind: v.Kind, under: under}
	switch v.Kind {
	case unstable.String, unstable.Integer, unstable.Float, unstable.Bool:
		en.text = string(v.Data)
	}
	ix.add(first, en)
	ix.value(under, path, line, first, v)
}

// value indexes the contents of an inline table or array at path.
func (ix *index) value(under, path string, line, off int, v *unstable.Node) {
	if off := ix.offset(v); off >= 0 {
		ix.byPos[off] = path
	}
	switch v.Kind {
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			if c := it.Node(); c.Kind == unstable.KeyValue {
				ix.keyValue(under, path, c)
			}
		}
	case unstable.Array:
		i := 0
		it := v.Children()
		for it.Next() {
			c := it.Node()
			if c.Kind == unstable.Comment {
				continue
			}
			el := path + "[" + strconv.Itoa(i) + "]"
			i++
			l, o := line, off
			if co := ix.offset(c); co >= 0 {
				l, o = ix.lineAt(co), co
			}
			ix.add(-1, entry{path: el, line: l, off: o, kind: c.Kind})
			ix.value(under, el, l, o, c)
		}
	}
}

// offset returns the document offset of n, or -1 when the parser did not
// record one (arrays, headers).
func (ix *index) offset(n *unstable.Node) int {
	if n == nil || n.Raw.Length == 0 {
		return -1
	}
	return int(n.Raw.Offset)
}

// lineAt returns the 1-based line of a document offset.
func (ix *index) lineAt(off int) int {
	return sort.SearchInts(ix.nl, off) + 1
}

// offsetOf converts a 1-based line and byte column to an offset.
// ix may be nil (then -1).
func (ix *index) offsetOf(line, col int) int {
	if ix == nil {
		return -1
	}
	start := 0
	if line > 1 && line-2 < len(ix.nl) {
		start = ix.nl[line-2] + 1
	}
	return start + col - 1
}

// line returns the line of key, or of the closest enclosing table or array
// element present in the document, or 0. ix may be nil.
func (ix *index) line(key string) int {
	line, _ := ix.pos(key)
	return line
}

// pos is line, plus the document offset of the same place (or -1).
func (ix *index) pos(key string) (line, off int) {
	if ix == nil {
		return 0, -1
	}
	for key != "" {
		if en, ok := ix.byPath[key]; ok {
			return en.line, en.off
		}
		key = parentPath(key)
	}
	return 0, -1
}

// has reports whether key is written in the document. ix may be nil
// (then false).
func (ix *index) has(key string) bool {
	_, ok := ix.kind(key)
	return ok
}

// entry returns the entry of key. ix may be nil (then false).
func (ix *index) entry(key string) (entry, bool) {
	if ix == nil {
		return entry{}, false
	}
	en, ok := ix.byPath[key]
	return en, ok
}

// kind returns the kind of the value written at key.
func (ix *index) kind(key string) (unstable.Kind, bool) {
	if ix == nil {
		return unstable.Invalid, false
	}
	en, ok := ix.byPath[key]
	return en.kind, ok
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

// parentPath strips the last part of a key path: "proxies[1].name" →
// "proxies[1]" → "proxies"; "transport.tls" → "transport" → "".
func parentPath(key string) string {
	i := strings.LastIndexAny(key, ".[")
	if i < 0 {
		return ""
	}
	return key[:i]
}

// splitPath splits "proxies[1].name" into "proxies", "[1]", "name".
func splitPath(key string) []string {
	var parts []string
	for key != "" {
		i := strings.IndexAny(key[1:], ".[")
		if i < 0 {
			parts = append(parts, key)
			break
		}
		i++
		parts = append(parts, key[:i])
		key = key[i:]
		if key[0] == '.' {
			key = key[1:]
		}
	}
	return parts
}
