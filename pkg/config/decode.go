package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// LoadServer reads and validates the server config file at path. A file
// that cannot be read gives an error wrapping the os error (so
// errors.Is(err, fs.ErrNotExist) works); a bad file gives an *Error.
func LoadServer(path string) (*ServerConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading server config: %w", err)
	}
	return ParseServer(path, data)
}

// LoadClient reads and validates the client config file at path. A file
// that cannot be read gives an error wrapping the os error (so
// errors.Is(err, fs.ErrNotExist) works); a bad file gives an *Error.
func LoadClient(path string) (*ClientConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading client config: %w", err)
	}
	return ParseClient(path, data)
}

// ParseServer decodes and validates a server config. name is the file name
// used in messages. Any error is an *Error listing every problem found.
func ParseServer(name string, data []byte) (*ServerConfig, error) {
	var raw rawServer
	r, ok := decode(name, data, &raw, os.LookupEnv)
	if !ok {
		return nil, r.err()
	}
	cfg := conv{r}.server(&raw)
	cfg.validate(r)
	if err := r.err(); err != nil {
		return nil, err
	}
	cfg.src = &source{file: name, ix: r.ix}
	return &cfg, nil
}

// ParseClient decodes and validates a client config. name is the file name
// used in messages. Any error is an *Error listing every problem found.
func ParseClient(name string, data []byte) (*ClientConfig, error) {
	var raw rawClient
	r, ok := decode(name, data, &raw, os.LookupEnv)
	if !ok {
		return nil, r.err()
	}
	cfg := conv{r}.client(&raw)
	convWarnings := slices.Clone(r.warnings)
	cfg.validate(r)
	if err := r.err(); err != nil {
		return nil, err
	}
	cfg.src = &source{file: name, ix: r.ix, convWarnings: convWarnings}
	return &cfg, nil
}

// decode fills the raw shape pointed to by raw and expands environment
// references. It returns false when the document could not be decoded at
// all (syntax or type errors); unknown keys are reported but decoding goes
// on, so that the remaining problems are reported too.
func decode(name string, data []byte, raw any, lookup func(string) (string, bool)) (*reporter, bool) {
	r := newReporter(name, nil)
	root := reflect.TypeOf(raw).Elem()
	reported := make(map[string]bool) // unknown keys go-toml reported
	err := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields().Decode(raw)
	if ix, ierr := buildIndex(data); ierr == nil {
		r.ix = ix
	}

	var strict *toml.StrictMissingError
	var de *toml.DecodeError
	switch {
	case err == nil:
	case errors.As(err, &strict):
		for i := range strict.Errors {
			e := &strict.Errors[i]
			line, col := e.Position()
			key := r.keyAt(line, col, e.Key())
			en, _ := r.ix.entry(key)
			msg, meant := unknownKey(root, r.ix, key, en)
			r.addAt(line, r.ix.offsetOf(line, col), key, msg)
			r.suppress(key, meant)
			reported[key] = true
		}
	case errors.As(err, &de):
		if r.ix != nil && typeCheck(r, root)+caseCheck(r, raw, reported) > 0 {
			return r, false
		}
		line, col := de.Position()
		msg := "invalid TOML: " + strings.TrimPrefix(de.Error(), "toml: ")
		if strings.Contains(lineText(data, line), "{{") {
			msg += "; hop does not expand frp's templates ({{ ... }}): write each entry out, and ${NAME} for the environment variable NAME"
		}
		r.addAt(line, r.ix.offsetOf(line, col), r.keyAt(line, col, de.Key()), msg)
		return r, false
	default:
		r.addAt(0, -1, "", "invalid TOML: "+strings.TrimPrefix(err.Error(), "toml: "))
		return r, false
	}
	if r.ix == nil {
		// go-toml accepted a document its own parser rejects: should not
		// happen, but never report success without positions.
		r.addAt(0, -1, "", "invalid TOML: cannot index the document")
		return r, false
	}
	caseCheck(r, raw, reported)
	expandAll(r, reflect.ValueOf(raw).Elem(), "", lookup)
	return r, true
}

// lineText returns the 1-based line of data, or "".
func lineText(data []byte, line int) string {
	for i := 1; len(data) > 0; i++ {
		l, rest, _ := bytes.Cut(data, []byte("\n"))
		if i == line {
			return string(l)
		}
		data = rest
	}
	return ""
}

// keyAt returns the key path at a document position reported by go-toml,
// falling back to the key go-toml gives (which has no array indexes).
func (r *reporter) keyAt(line, col int, k toml.Key) string {
	if r.ix != nil {
		if p, ok := r.ix.byPos[r.ix.offsetOf(line, col)]; ok {
			return p
		}
	}
	return strings.Join(k, ".")
}

// typeCheck reports every value whose TOML type does not fit the raw shape
// (go-toml stops at the first) and returns how many it found.
func typeCheck(r *reporter, root reflect.Type) int {
	n := 0
	for _, en := range r.ix.entries {
		t, ok := schemaType(root, en.path)
		if !ok || fits(t, en.kind) {
			continue
		}
		r.addAt(en.line, en.off, en.path, fmt.Sprintf("expected %s, found %s%s", describe(t), kindName(en.kind), typeHint(en)))
		n++
	}
	return n
}

var rawTextType = reflect.TypeOf(rawText(""))

func fits(t reflect.Type, k unstable.Kind) bool {
	switch {
	case t == rawTextType:
		return k == unstable.String || k == unstable.Integer || k == unstable.Float || k == unstable.Bool
	case t.Kind() == reflect.String:
		return k == unstable.String
	case t.Kind() == reflect.Int64:
		return k == unstable.Integer
	case t.Kind() == reflect.Bool:
		return k == unstable.Bool
	case t.Kind() == reflect.Struct:
		return k == unstable.Table || k == unstable.InlineTable
	case t.Kind() == reflect.Slice:
		return k == unstable.Array || k == unstable.ArrayTable || k == unstable.Table
	}
	return true
}

func describe(t reflect.Type) string {
	switch {
	case t == rawTextType:
		return `a duration string with a unit, e.g. "10s"`
	case t.Kind() == reflect.String:
		return "a string in double quotes"
	case t.Kind() == reflect.Int64:
		return "an integer (no quotes)"
	case t.Kind() == reflect.Bool:
		return "true or false (no quotes)"
	case t.Kind() == reflect.Struct:
		return "a table"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return `an array of strings, e.g. ["a", "b"]`
	case t.Kind() == reflect.Slice:
		return "an array"
	}
	return t.String()
}

func kindName(k unstable.Kind) string {
	switch k {
	case unstable.String:
		return "a string"
	case unstable.Integer:
		return "an integer"
	case unstable.Float:
		return "a float"
	case unstable.Bool:
		return "a boolean"
	case unstable.Array:
		return "an array"
	case unstable.Table, unstable.InlineTable:
		return "a table"
	case unstable.ArrayTable:
		return "an array of tables"
	case unstable.LocalDate, unstable.LocalTime, unstable.LocalDateTime, unstable.DateTime:
		return "a date/time"
	}
	return "a " + k.String()
}

// schemaType returns the type of the raw-shape field at key path, without
// pointers.
func schemaType(root reflect.Type, key string) (reflect.Type, bool) {
	t := root
	for _, seg := range splitPath(key) {
		t = deref(t)
		if strings.HasPrefix(seg, "[") {
			if t.Kind() != reflect.Slice {
				return nil, false
			}
			t = t.Elem()
			continue
		}
		f, ok := fieldByKey(t, seg)
		if !ok {
			return nil, false
		}
		t = f.Type
	}
	return deref(t), true
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	if t.Kind() != reflect.Struct {
		return reflect.StructField{}, false
	}
	for i := 0; i < t.NumField(); i++ {
		if f := t.Field(i); tomlName(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func keysOf(t reflect.Type) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		if name := tomlName(t.Field(i)); name != "" {
			keys = append(keys, name)
		}
	}
	return keys
}

// caseCheck reports the keys of the document that match a key of the raw
// shape raw points to only in another letter case ("SERVERPORT", "[AUTH]"):
// go-toml matches field names case-insensitively, hop does not. A value
// stays decoded (problems about the key meant are left out); a table is
// cleared, so that its keys are not checked without their lines. It
// returns how many keys it reported. reported holds the keys already
// reported as unknown.
func caseCheck(r *reporter, raw any, reported map[string]bool) int {
	root := reflect.TypeOf(raw).Elem()
	n := 0
	for _, en := range r.ix.entries {
		p, ok := caseMismatch(root, en.path)
		if !ok || reported[p] {
			continue
		}
		reported[p] = true
		pe, found := r.ix.entry(p)
		if !found || p != en.path {
			// A table named in the header or dotted key of en.
			pe = entry{path: p, line: en.line, off: en.off, kind: unstable.Table}
		}
		msg, meant := unknownKey(root, r.ix, p, pe)
		r.addAt(pe.line, pe.off, p, msg)
		if pe.kind == unstable.Table || pe.kind == unstable.ArrayTable || pe.kind == unstable.InlineTable {
			// What go-toml decoded from the table would be checked
			// without the lines of its keys (they are under another
			// name): drop it, and what would be missing now.
			clearPath(reflect.ValueOf(raw).Elem(), splitPath(p))
			r.suppressTree(meant)
		}
		r.suppress(p, meant)
		n++
	}
	return n
}

// caseMismatch walks key path through the raw shape t and returns the
// path up to the first part that names a field only in another case.
func caseMismatch(t reflect.Type, key string) (string, bool) {
	path := ""
	for _, seg := range splitPath(key) {
		t = deref(t)
		if strings.HasPrefix(seg, "[") {
			if t.Kind() != reflect.Slice {
				return "", false
			}
			t, path = t.Elem(), path+seg
			continue
		}
		if t.Kind() != reflect.Struct {
			return "", false
		}
		path = join(path, seg)
		if f, ok := fieldByKey(t, seg); ok {
			t = f.Type
			continue
		}
		for _, k := range keysOf(t) {
			if strings.EqualFold(k, seg) {
				return path, true
			}
		}
		return "", false
	}
	return "", false
}

// clearPath sets the field that go-toml filled from the wrong-case key at
// path segs (inside v) back to its zero value.
func clearPath(v reflect.Value, segs []string) {
	for i, seg := range segs {
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return
			}
			v = v.Elem()
		}
		if strings.HasPrefix(seg, "[") {
			n, err := strconv.Atoi(strings.Trim(seg, "[]"))
			if err != nil || v.Kind() != reflect.Slice || n >= v.Len() {
				return
			}
			v = v.Index(n)
			continue
		}
		if v.Kind() != reflect.Struct {
			return
		}
		t := v.Type()
		for j := 0; j < t.NumField(); j++ {
			name := tomlName(t.Field(j))
			if i == len(segs)-1 && name != seg && strings.EqualFold(name, seg) {
				v.Field(j).SetZero()
				return
			}
			if name == seg {
				v = v.Field(j)
				break
			}
		}
	}
}

// unknownKey explains an unknown key and suggests what was meant. en is
// its entry in the document ix (zero when unknown); a Table or ArrayTable
// kind tells that the key names a table ([key] or [[key]]). meant is the
// key path suggested, if any, so that problems about it can be left out:
// the user tried to set it.
func unknownKey(root reflect.Type, ix *index, key string, en entry) (msg, meant string) {
	isTable := en.kind == unstable.Table || en.kind == unstable.ArrayTable
	t, parent := root, ""
	segs := splitPath(key)
	for i, seg := range segs {
		t = deref(t)
		if strings.HasPrefix(seg, "[") {
			if t.Kind() != reflect.Slice {
				break
			}
			t, parent = t.Elem(), parent+seg
			continue
		}
		if f, ok := fieldByKey(t, seg); ok {
			t, parent = f.Type, join(parent, seg)
			continue
		}
		last := i == len(segs)-1
		what := "unknown key"
		if !last {
			what = "unknown table " + join(parent, seg)
		} else if isTable {
			what = "unknown table"
		}
		if !isTable {
			if m, meant, ok := frpHint(root, ix, key, en); ok {
				return "unknown key; " + m, meant
			}
		}
		if t.Kind() != reflect.Struct {
			return what + "; remove it", ""
		}
		if s := closest(seg, keysOf(t)); s != "" {
			meant = join(parent, s)
			if last && !isTable {
				return fmt.Sprintf("%s; did you mean %s?", what, s), meant
			}
			return fmt.Sprintf("%s; did you mean %s?", what, meant), meant
		}
		if _, top := fieldByKey(root, seg); top && parent != "" && last {
			return fmt.Sprintf("%s; %s is a top-level key, but keys below %s belong to that table: move it above the first [table] header", what, seg, header(parent)), seg
		}
		inElem := strings.HasSuffix(parent, "]")
		if h, ok := entryHints[strings.TrimRight(parent, "[]0123456789")+"."+seg]; ok && inElem && last && !isTable {
			if h.meant != "" {
				meant = join(parent, h.meant)
			}
			return what + "; " + h.msg, meant
		}
		// A key of another table is a likely mistake for a key misplaced
		// in a table, not for one inside an array element.
		if s := elsewhere(root, "", seg); s != "" && !inElem {
			return fmt.Sprintf("%s; did you mean %s?", what, s), s
		}
		if s := inArray(root, seg); s != "" {
			return fmt.Sprintf("%s; %s is a key of [[%s]] entries: put it below a [[%s]] header", what, seg, s, s), ""
		}
		where := "at the top level"
		if parent != "" {
			where = "in " + header(parent)
		}
		return fmt.Sprintf("%s; the keys %s are: %s", what, where, strings.Join(keysOf(t), ", ")), ""
	}
	return "unknown key; remove it", ""
}

// entryHints explain keys written in the wrong kind of array entry, by
// "array.key": meant is the key of the same entry that was likely meant.
var entryHints = map[string]struct{ msg, meant string }{
	"visitors.localIP":    {"a visitor listens on this host at bindAddr and bindPort: write bindAddr (localIP belongs to [[proxies]])", "bindAddr"},
	"visitors.localPort":  {"a visitor listens on this host at bindAddr and bindPort: write bindPort (localPort belongs to [[proxies]])", "bindPort"},
	"visitors.remotePort": {"a visitor has no port on the server; it listens on this host at bindAddr and bindPort: write bindPort", "bindPort"},
	"proxies.bindAddr":    {"bindAddr is a key of [[visitors]] entries; a proxy forwards to its local service at localIP and localPort", ""},
	"proxies.bindPort":    {"bindPort is a key of [[visitors]] entries; a proxy forwards to its local service at localIP and localPort", ""},
	"proxies.serverName":  {"serverName is a key of [[visitors]] entries, naming the proxy to visit; a proxy's own name is name", ""},
}

// header returns how the table at key path is written: "[transport.tls]",
// or "[[proxies]]" for an array element.
func header(key string) string {
	if strings.HasSuffix(key, "]") {
		return "[[" + strings.TrimRight(key, "[]0123456789") + "]]"
	}
	return "[" + key + "]"
}

// closest returns the key in keys that name most likely misspells: the
// same letters in another case or with _ or -, or within two edits.
func closest(name string, keys []string) string {
	norm := normKey
	for _, k := range keys {
		if norm(k) == norm(name) {
			return k
		}
	}
	best, bestD := "", 3
	if len(name) < 5 {
		bestD = 2
	}
	for _, k := range keys {
		if d := editDistance(norm(name), norm(k)); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// elsewhere returns the path of a key named like name in another table of
// the schema (not inside arrays), e.g. "auth.token" for "token".
func elsewhere(t reflect.Type, prefix, name string) string {
	t = deref(t)
	if t.Kind() != reflect.Struct {
		return ""
	}
	keys := keysOf(t)
	sort.Strings(keys)
	if prefix != "" {
		for _, k := range keys {
			if normKey(k) == normKey(name) {
				return join(prefix, k)
			}
		}
	}
	for _, k := range keys {
		f, _ := fieldByKey(t, k)
		if s := elsewhere(f.Type, join(prefix, k), name); s != "" {
			return s
		}
	}
	return ""
}

// inArray returns the name of the array of tables whose entries have a key
// named like name, e.g. "proxies" for "localPort".
func inArray(root reflect.Type, name string) string {
	root = deref(root)
	for _, k := range keysOf(root) {
		f, _ := fieldByKey(root, k)
		if t := deref(f.Type); t.Kind() == reflect.Slice && deref(t.Elem()).Kind() == reflect.Struct {
			for _, ek := range keysOf(deref(t.Elem())) {
				if normKey(ek) == normKey(name) {
					return k
				}
			}
		}
	}
	return ""
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of neighbours.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			d[i][j] = min(d[i-1][j-1]+c, d[i-1][j]+1, d[i][j-1]+1)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// normKey folds case and drops _ and -, so that bind_port matches bindPort.
func normKey(s string) string {
	return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s))
}
