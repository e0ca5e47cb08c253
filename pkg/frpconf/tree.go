package frpconf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
	yaml "go.yaml.in/yaml/v3"
)

// A value of the decoded document: string, int64, float64, bool, nil,
// []*value or *object; line is where its key is (1-based; 0 unknown).
type value struct {
	v    any
	line int
}

// object is a table with its keys in document order.
type object struct {
	keys []string
	m    map[string]*value
}

func (o *object) set(k string, v *value) bool {
	if _, dup := o.m[k]; dup {
		return false
	}
	o.keys = append(o.keys, k)
	o.m[k] = v
	return true
}

func newObject() *object { return &object{m: make(map[string]*value)} }

// maxNodes bounds the values of one document (YAML aliases can repeat a
// subtree many times).
const maxNodes = 100000

// decodeTOML decodes a TOML document, with the line of each key.
func decodeTOML(data []byte) (*object, error) {
	var m map[string]any
	if err := toml.Unmarshal(data, &m); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			line, _ := de.Position()
			return nil, syntaxError(data, line, strings.TrimPrefix(de.Error(), "toml: "))
		}
		return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	lines, err := tomlLines(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	v, err := fromGo(m, "", lines)
	if err != nil {
		return nil, err
	}
	return v.v.(*object), nil
}

// fromGo turns go-toml's map[string]any tree into values, with the lines
// of lines (by key path), keys in document order.
func fromGo(x any, path string, lines map[string]int) (*value, error) {
	v := &value{line: lines[path]}
	switch t := x.(type) {
	case map[string]any:
		o := newObject()
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			li, lj := lines[joinPath(path, keys[i])], lines[joinPath(path, keys[j])]
			if li != lj {
				return li < lj
			}
			return keys[i] < keys[j]
		})
		for _, k := range keys {
			c, err := fromGo(t[k], joinPath(path, k), lines)
			if err != nil {
				return nil, err
			}
			o.set(k, c)
		}
		v.v = o
	case []any:
		s := make([]*value, len(t))
		for i, e := range t {
			c, err := fromGo(e, path+"["+strconv.Itoa(i)+"]", lines)
			if err != nil {
				return nil, err
			}
			if c.line == 0 {
				c.line = v.line
			}
			s[i] = c
		}
		v.v = s
	case string, int64, float64, bool:
		v.v = t
	default:
		return nil, fmt.Errorf("%w: line %d: %s: a %T value; frp's keys take strings, numbers, booleans, arrays and tables", ErrValue, v.line, path, x)
	}
	return v, nil
}

// tomlLines maps the key paths of a TOML document ("proxies[1].name") to
// their lines.
func tomlLines(data []byte) (map[string]int, error) {
	lines := make(map[string]int)
	lineAt := func(n *unstable.Node) int {
		if n == nil || n.Raw.Length == 0 || int(n.Raw.Offset) > len(data) {
			return 0
		}
		return bytes.Count(data[:n.Raw.Offset], []byte("\n")) + 1
	}
	var kv func(kv *unstable.Node, prefix string)
	var walk func(path string, line int, v *unstable.Node)
	walk = func(path string, line int, v *unstable.Node) {
		if _, ok := lines[path]; !ok {
			lines[path] = line
		}
		switch v.Kind {
		case unstable.InlineTable:
			it := v.Children()
			for it.Next() {
				if c := it.Node(); c.Kind == unstable.KeyValue {
					kv(c, path)
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
				l := lineAt(c)
				if l == 0 {
					l = line
				}
				walk(path+"["+strconv.Itoa(i)+"]", l, c)
				i++
			}
		}
	}
	kv = func(e *unstable.Node, prefix string) {
		path, line := prefix, 0
		it := e.Key()
		for it.Next() {
			if line == 0 {
				line = lineAt(it.Node())
			}
			path = joinPath(path, string(it.Node().Data))
			if _, ok := lines[path]; !ok && !it.IsLast() {
				lines[path] = line
			}
		}
		if v := e.Value(); v != nil {
			walk(path, line, v)
		}
	}
	var p unstable.Parser
	p.Reset(data)
	arrays := make(map[string]int)
	prefix := ""
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.KeyValue:
			kv(e, prefix)
		case unstable.Table, unstable.ArrayTable:
			path, line := "", 0
			it := e.Key()
			for it.Next() {
				k := it.Node()
				if line == 0 {
					line = lineAt(k)
				}
				path = joinPath(path, string(k.Data))
				if n, ok := arrays[path]; ok && (e.Kind == unstable.Table || !it.IsLast()) {
					path += "[" + strconv.Itoa(n-1) + "]"
				}
			}
			if _, ok := lines[path]; !ok {
				lines[path] = line
			}
			if e.Kind == unstable.ArrayTable {
				n := arrays[path]
				arrays[path] = n + 1
				path += "[" + strconv.Itoa(n) + "]"
				lines[path] = line
			}
			prefix = path
		}
	}
	if err := p.Error(); err != nil {
		return nil, err
	}
	return lines, nil
}

func joinPath(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

// syntaxError reports a document that does not parse, with a hint when
// the line holds one of frp's templates.
func syntaxError(data []byte, line int, msg string) error {
	if line > 0 && strings.Contains(lineOf(data, line), "{{") {
		msg += "; frp renders {{ ... }} templates before it parses the file: write the value out, or ${NAME} in a string for the environment variable NAME"
	}
	if line > 0 {
		return fmt.Errorf("%w: line %d: %s", ErrSyntax, line, msg)
	}
	return fmt.Errorf("%w: %s", ErrSyntax, msg)
}

func lineOf(data []byte, line int) string {
	for i := 1; i < line; i++ {
		j := bytes.IndexByte(data, '\n')
		if j < 0 {
			return ""
		}
		data = data[j+1:]
	}
	if j := bytes.IndexByte(data, '\n'); j >= 0 {
		data = data[:j]
	}
	return string(data)
}

// decodeYAML decodes a YAML document (one), with the line of each key.
func decodeYAML(data []byte) (*object, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		msg := err.Error()
		line := 0
		if _, err := fmt.Sscanf(strings.TrimPrefix(msg, "yaml: "), "line %d:", &line); err != nil {
			line = 0
		}
		return nil, syntaxError(data, line, strings.TrimPrefix(msg, "yaml: "))
	}
	if doc.Kind == 0 {
		return newObject(), nil // empty document
	}
	budget := maxNodes
	v, err := fromYAML(&doc, &budget, 0)
	if err != nil {
		return nil, err
	}
	o, ok := v.v.(*object)
	if !ok {
		return nil, fmt.Errorf("%w: line %d: the document is not a mapping of keys", ErrSyntax, v.line)
	}
	return o, nil
}

func fromYAML(n *yaml.Node, budget *int, depth int) (*value, error) {
	*budget--
	if *budget < 0 || depth > 100 {
		return nil, fmt.Errorf("%w: line %d: the document is too large or too deep (aliases expand to more than %d values)", ErrSyntax, n.Line, maxNodes)
	}
	v := &value{line: n.Line}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return nil, fmt.Errorf("%w: line %d: one YAML document expected", ErrSyntax, n.Line)
		}
		return fromYAML(n.Content[0], budget, depth+1)
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil, fmt.Errorf("%w: line %d: alias without anchor", ErrSyntax, n.Line)
		}
		a, err := fromYAML(n.Alias, budget, depth+1)
		if err != nil {
			return nil, err
		}
		return &value{v: a.v, line: n.Line}, nil
	case yaml.MappingNode:
		o := newObject()
		var merges []*yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			if kn.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("%w: line %d: a key that is not a plain name", ErrSyntax, kn.Line)
			}
			if kn.ShortTag() == "!!merge" {
				merges = append(merges, vn) // after the keys written here, which win
				continue
			}
			c, err := fromYAML(vn, budget, depth+1)
			if err != nil {
				return nil, err
			}
			c.line = kn.Line
			if !o.set(kn.Value, c) {
				return nil, fmt.Errorf("%w: line %d: %s: the key is written twice", ErrSyntax, kn.Line, kn.Value)
			}
		}
		// Merge keys (<<: *base, or a list of them), as frp reads them: the
		// keys of each mapping that this one does not have.
		for _, mn := range merges {
			srcs := []*yaml.Node{mn}
			if mn.Kind == yaml.SequenceNode {
				srcs = mn.Content
			}
			for _, src := range srcs {
				m, err := fromYAML(src, budget, depth+1)
				if err != nil {
					return nil, err
				}
				mo, ok := m.v.(*object)
				if !ok {
					return nil, fmt.Errorf("%w: line %d: a merge key (<<) takes a mapping or a list of mappings", ErrSyntax, src.Line)
				}
				for _, k := range mo.keys {
					o.set(k, mo.m[k]) // false: written here, or by an earlier merge
				}
			}
		}
		v.v = o
	case yaml.SequenceNode:
		s := make([]*value, 0, len(n.Content))
		for _, e := range n.Content {
			c, err := fromYAML(e, budget, depth+1)
			if err != nil {
				return nil, err
			}
			s = append(s, c)
		}
		v.v = s
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			v.v = n.Value
		case "!!int":
			var i int64
			if err := n.Decode(&i); err != nil {
				return nil, fmt.Errorf("%w: line %d: %q: %v", ErrSyntax, n.Line, n.Value, err)
			}
			v.v = i
		case "!!float":
			var f float64
			if err := n.Decode(&f); err != nil {
				return nil, fmt.Errorf("%w: line %d: %q: %v", ErrSyntax, n.Line, n.Value, err)
			}
			v.v = f
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err != nil {
				return nil, fmt.Errorf("%w: line %d: %q: %v", ErrSyntax, n.Line, n.Value, err)
			}
			v.v = b
		case "!!null":
			v.v = nil
		default:
			return nil, fmt.Errorf("%w: line %d: %q is a %s value; frp's keys take strings, numbers, booleans, lists and mappings", ErrSyntax, n.Line, n.Value, n.ShortTag())
		}
	default:
		return nil, fmt.Errorf("%w: line %d: unexpected YAML node", ErrSyntax, n.Line)
	}
	return v, nil
}

// decodeJSON decodes a JSON object, with the line of each key.
func decodeJSON(data []byte) (*object, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	lineAt := func() int {
		off := int(d.InputOffset())
		return bytes.Count(data[:min(off, len(data))], []byte("\n")) + 1
	}
	budget := maxNodes
	var parse func(depth int) (*value, error)
	parse = func(depth int) (*value, error) {
		budget--
		if budget < 0 || depth > 100 {
			return nil, fmt.Errorf("%w: line %d: the document is too large or too deep", ErrSyntax, lineAt())
		}
		line := lineAt()
		tok, err := d.Token()
		if err != nil {
			return nil, jsonError(data, d, err)
		}
		v := &value{line: line}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				o := newObject()
				for d.More() {
					kt, err := d.Token()
					if err != nil {
						return nil, jsonError(data, d, err)
					}
					kline := lineAt()
					k, ok := kt.(string)
					if !ok {
						return nil, fmt.Errorf("%w: line %d: a key that is not a string", ErrSyntax, kline)
					}
					c, err := parse(depth + 1)
					if err != nil {
						return nil, err
					}
					c.line = kline
					if !o.set(k, c) {
						return nil, fmt.Errorf("%w: line %d: %s: the key is written twice", ErrSyntax, kline, k)
					}
				}
				if _, err := d.Token(); err != nil {
					return nil, jsonError(data, d, err)
				}
				v.v = o
			case '[':
				var s []*value
				for d.More() {
					c, err := parse(depth + 1)
					if err != nil {
						return nil, err
					}
					s = append(s, c)
				}
				if _, err := d.Token(); err != nil {
					return nil, jsonError(data, d, err)
				}
				v.v = s
			default:
				return nil, fmt.Errorf("%w: line %d: unexpected %v", ErrSyntax, line, t)
			}
		case json.Number:
			if i, err := t.Int64(); err == nil {
				v.v = i
			} else if f, err := t.Float64(); err == nil && !math.IsInf(f, 0) {
				v.v = f
			} else {
				return nil, fmt.Errorf("%w: line %d: %s is out of range", ErrSyntax, line, t)
			}
		case string, bool, nil:
			v.v = t
		}
		return v, nil
	}
	v, err := parse(0)
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: line %d: data after the end of the JSON object", ErrSyntax, lineAt())
	}
	o, ok := v.v.(*object)
	if !ok {
		return nil, fmt.Errorf("%w: line %d: the document is not a JSON object", ErrSyntax, v.line)
	}
	return o, nil
}

func jsonError(data []byte, d *json.Decoder, err error) error {
	off := int(d.InputOffset())
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off = int(se.Offset)
	}
	line := bytes.Count(data[:min(max(off, 0), len(data))], []byte("\n")) + 1
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: line %d: the JSON document ends too early", ErrSyntax, line)
	}
	return syntaxError(data, line, err.Error())
}
