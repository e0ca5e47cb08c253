package frpconf

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hopproxy/hop/pkg/config"
)

type converter struct {
	side   Side
	schema map[string]kind
	tables map[string]bool
	errs   []error
	keys   []Key
	// written counts the entries of proxies and visitors written out.
	written map[string]int
	// usedEnv: some value refers to an environment variable.
	usedEnv bool

	top      *section
	proxies  []*section
	visitors []*section
}

// section is a table of the output: the top level, or one [[proxies]] or
// [[visitors]] entry.
type section struct {
	array   string // "", "proxies" or "visitors"
	index   int
	entries []entry
	byPath  map[string]int
	keys    []int  // indexes in converter.keys of the keys converted here
	skip    string // why the whole entry is not converted
	hasPlug bool
}

// entry is one hop key of a section, its path relative to the section.
type entry struct {
	path string
	val  any // string, int64, float64, bool, []string, map[string]string, []*object
	from string
}

// leaveOut marks the entry as not converted, for reason.
func (s *section) leaveOut(reason string) {
	if s.skip != "" {
		s.skip += "; also, "
	}
	s.skip += reason
}

func newSection(array string, i int) *section {
	return &section{array: array, index: i, byPath: make(map[string]int)}
}

func (c *converter) errorf(base error, line int, key, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%w: line %d: %s: %s", base, line, key, fmt.Sprintf(format, args...)))
}

// displayKey writes one part of a key path, quoted when it is not a bare
// key.
func displayKey(k string) string {
	if bareKey.MatchString(k) {
		return k
	}
	return tomlString(k)
}

var bareKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// check reports unknown keys and values of the wrong type below o, whose
// path is g (with [] for array entries) and d (as in the document).
func (c *converter) check(o *object, g, d string) {
	for _, k := range o.keys {
		v := o.m[k]
		gk, dk := joinPath(g, k), joinPath(d, displayKey(k))
		kd, ok := c.schema[gk]
		if !ok {
			if c.tables[gk] {
				if vo, isObj := v.v.(*object); isObj {
					c.check(vo, gk, dk)
				} else {
					c.errorf(ErrValue, v.line, dk, "%s; frp takes a table here", describe(v.v))
				}
				continue
			}
			c.unknown(gk, dk, k, v, g)
			continue
		}
		c.checkValue(kd, gk, dk, v)
	}
}

func (c *converter) checkValue(kd kind, gk, dk string, v *value) {
	bad := func() { c.errorf(ErrValue, v.line, dk, "%s; frp takes %s here", describe(v.v), kd) }
	switch kd {
	case kString:
		if _, ok := v.v.(string); !ok {
			bad()
		}
	case kInt:
		if _, ok := v.v.(int64); !ok {
			bad()
		}
	case kBool:
		if _, ok := v.v.(bool); !ok {
			bad()
		}
	case kStrings:
		s, ok := v.v.([]*value)
		for _, e := range s {
			if _, isStr := e.v.(string); !isStr {
				ok = false
			}
		}
		if !ok {
			bad()
		}
	case kMap, kBoolMap:
		o, ok := v.v.(*object)
		if ok {
			for _, k := range o.keys {
				e := o.m[k]
				_, isStr := e.v.(string)
				_, isBool := e.v.(bool)
				if (kd == kMap && !isStr) || (kd == kBoolMap && !isBool) {
					c.errorf(ErrValue, e.line, joinPath(dk, displayKey(k)), "%s; frp takes %s here", describe(e.v), map[kind]string{kMap: "a string", kBoolMap: "true or false"}[kd])
				}
			}
		} else {
			bad()
		}
	case kTables:
		s, ok := v.v.([]*value)
		if !ok {
			bad()
			return
		}
		for i, e := range s {
			eo, isObj := e.v.(*object)
			if !isObj {
				c.errorf(ErrValue, e.line, dk+"["+strconv.Itoa(i)+"]", "%s; frp takes a table here", describe(e.v))
				continue
			}
			c.check(eo, gk+"[]", dk+"["+strconv.Itoa(i)+"]")
		}
	}
}

func describe(v any) string {
	switch t := v.(type) {
	case nil:
		return "null (write a value, or leave the key out)"
	case string:
		return fmt.Sprintf("the string %s", tomlString(t))
	case int64:
		return fmt.Sprintf("the integer %d", t)
	case float64:
		return fmt.Sprintf("the number %v", t)
	case bool:
		return fmt.Sprintf("%v", t)
	case []*value:
		return "an array"
	}
	return "a table"
}

// unknown reports key k (paths gk, dk) that frp does not have, with the
// key of the same table it most likely meant.
func (c *converter) unknown(gk, dk, k string, v *value, g string) {
	var sib []string
	prefix := g
	if prefix != "" {
		prefix += "."
	}
	seen := make(map[string]bool)
	for p := range c.schema {
		if rest, ok := strings.CutPrefix(p, prefix); ok {
			name, _, _ := strings.Cut(rest, ".")
			name = strings.TrimSuffix(name, "[]")
			if !seen[name] {
				seen[name] = true
				sib = append(sib, name)
			}
		}
	}
	sort.Strings(sib)
	hint := ""
	if m := closest(k, sib); m != "" {
		hint = fmt.Sprintf("; did you mean %s?", m)
	} else if len(sib) > 0 && len(sib) <= 30 {
		hint = "; frp's keys here are: " + strings.Join(sib, ", ")
	}
	what := "not a key of frp v0.52+ for " + map[Side]string{Client: "frpc", Server: "frps"}[c.side]
	if _, other := schemas[otherSide(c.side)][gk]; other {
		what = fmt.Sprintf("a key of %s, not of %s (is this the other side's file? use %s migrate for it)",
			map[Side]string{Client: "frps", Server: "frpc"}[c.side], map[Side]string{Client: "frpc", Server: "frps"}[c.side], otherSide(c.side))
	}
	c.errorf(ErrUnknownKey, v.line, dk, "%s%s", what, hint)
}

func otherSide(s Side) Side {
	if s == Client {
		return Server
	}
	return Client
}

// closest returns the name of names that k most likely misspells, or "".
func closest(k string, names []string) string {
	fold := func(s string) string { return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s)) }
	best, bestD := "", 3
	for _, n := range names {
		if fold(n) == fold(k) {
			return n
		}
		if d := editDistance(strings.ToLower(k), strings.ToLower(n)); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// convert fills the sections from the checked document.
func (c *converter) convert(root *object) {
	c.top = newSection("", 0)
	c.written = make(map[string]int)
	for _, k := range root.keys {
		v := root.m[k]
		if (k == "proxies" || k == "visitors") && c.side == Client {
			for i, e := range v.v.([]*value) {
				s := newSection(k, i)
				o := e.v.(*object)
				_, s.hasPlug = o.m["plugin"]
				c.walk(s, o, k+"[]", k+"["+strconv.Itoa(i)+"]")
				if s.skip != "" {
					for _, ki := range s.keys {
						c.keys[ki].To = ""
						c.keys[ki].Note = "the whole " + strings.TrimSuffix(k, "s") + " is left out (see the comment of its entry)"
					}
				}
				if k == "proxies" {
					c.proxies = append(c.proxies, s)
				} else {
					c.visitors = append(c.visitors, s)
				}
				if s.skip == "" {
					// Its index among the entries written out.
					prefix := fmt.Sprintf("%s[%d].", k, c.written[k])
					c.written[k]++
					for _, ki := range s.keys {
						if c.keys[ki].To != "" {
							c.keys[ki].To = prefix + c.keys[ki].To
						}
					}
				}
			}
			continue
		}
		c.walkKey(c.top, k, v, "", "")
	}
	c.frpHeartbeatTimeout()
}

// frpHeartbeatTimeout gives hop frp's heartbeat timeout when the input
// sets only the interval: frp's timeout defaults to 90 s and hop's to
// 30 s, under which frp's common 30 s interval would not even verify.
func (c *converter) frpHeartbeatTimeout() {
	i, ok := c.top.byPath["heartbeat.interval"]
	if _, set := c.top.byPath["heartbeat.timeout"]; !ok || set {
		return
	}
	if iv, _ := c.top.entries[i].val.(string); iv == "" || iv == "0s" {
		return
	}
	c.top.byPath["heartbeat.timeout"] = len(c.top.entries)
	c.top.entries = append(c.top.entries, entry{path: "heartbeat.timeout", val: "90s", from: "frp's default heartbeatTimeout"})
	for _, ki := range c.top.keys {
		if c.keys[ki].To == "heartbeat.interval" && c.keys[ki].Note == "" {
			c.keys[ki].Note = `with heartbeat.timeout = "90s", frp's default timeout (hop's is 30s)`
		}
	}
}

func (c *converter) walk(s *section, o *object, g, d string) {
	for _, k := range o.keys {
		c.walkKey(s, k, o.m[k], g, d)
	}
}

func (c *converter) walkKey(s *section, k string, v *value, g, d string) {
	gk, dk := joinPath(g, k), joinPath(d, displayKey(k))
	kd, leaf := c.schema[gk]
	if !leaf {
		c.walk(s, v.v.(*object), gk, dk)
		return
	}
	c.leaf(s, gk, dk, v)
	if kd == kTables {
		// Report the keys of each entry (allowPorts[0].start), as
		// converted or not with the array.
		arr := c.keys[len(c.keys)-1]
		c.keys, s.keys = c.keys[:len(c.keys)-1], s.keys[:len(s.keys)-1]
		for i, e := range v.v.([]*value) {
			el := "[" + strconv.Itoa(i) + "]"
			o := e.v.(*object)
			for _, k := range o.keys {
				sub := arr
				sub.Key, sub.Line = dk+el+"."+displayKey(k), o.m[k].line
				if sub.To != "" {
					sub.To += el + "." + k
				}
				c.keys = append(c.keys, sub)
				s.keys = append(s.keys, len(c.keys)-1)
			}
		}
	}
}

// note records key dk of section s as not converted, with why.
func (c *converter) note(s *section, dk string, line int, msg string, unmapped bool) {
	c.keys = append(c.keys, Key{Key: dk, Line: line, Note: msg, Unmapped: unmapped})
	s.keys = append(s.keys, len(c.keys)-1)
}

// converted records key dk of section s as written to hop's key to (a
// path relative to s), with an optional remark.
func (c *converter) converted(s *section, dk string, line int, to string, val any, remark string) {
	if i, dup := s.byPath[to]; dup {
		c.note(s, dk, line, fmt.Sprintf("hop's %s is already set from %s; this one is left out", to, s.entries[i].from), false)
		return
	}
	s.byPath[to] = len(s.entries)
	s.entries = append(s.entries, entry{path: to, val: val, from: dk})
	// The path in an entry gets its array's prefix in finish, once the
	// entries left out are known.
	c.keys = append(c.keys, Key{Key: dk, Line: line, To: to, Note: remark})
	s.keys = append(s.keys, len(c.keys)-1)
}

// lookup finds what hop does with frp's key gk: its entry in pkg/config's
// table, the same key in hop, or the entry of a table above it.
func (c *converter) lookup(gk string) (h config.FrpKey, hopKind string, ok bool) {
	side := string(c.side)
	if gk == "transport.tcpKeepalive" && c.side == Server {
		// frp's integer is hop's table (pkg/config's typeHint says so too).
		return config.FrpKey{To: "transport.tcpKeepalive.idle", Unit: "s", NegOff: true}, config.KindDuration, true
	}
	if h, ok := config.LookupFrpKey(side, gk); ok {
		if h.To == "" {
			return h, "", true
		}
		if k, ok := config.HopKeyKind(side, h.To); ok {
			return h, k, true
		}
	}
	if k, ok := config.HopKeyKind(side, gk); ok && k != config.KindTable {
		return config.FrpKey{To: gk}, k, true
	}
	for p := parentOf(gk); p != ""; p = parentOf(p) {
		if h, ok := config.LookupFrpKey(side, p); ok && h.To == "" {
			return h, "", true
		}
	}
	return config.FrpKey{}, "", false
}

func parentOf(g string) string {
	i := strings.LastIndex(g, ".")
	if i < 0 {
		return ""
	}
	return strings.TrimSuffix(g[:i], "[]")
}

// leaf converts one key of the input.
func (c *converter) leaf(s *section, gk, dk string, v *value) {
	switch gk {
	case "proxies[].enabled", "visitors[].enabled":
		h, _ := config.LookupFrpKey(string(c.side), gk)
		if b, _ := v.v.(bool); !b {
			s.leaveOut("frp had it disabled (enabled = false)")
		}
		c.note(s, dk, v.line, h.Msg, false)
		return
	case "proxies[].localIP", "proxies[].localPort":
		if s.hasPlug {
			c.note(s, dk, v.line, "frp ignores it next to a plugin (the plugin serves the connections); left out", false)
			return
		}
	case "proxies[].plugin.type":
		if msg, ok := config.FrpOnlyPlugin(v.v.(string)); ok {
			s.leaveOut(msg)
		}
	case "visitors[].plugin.type":
		h, _ := config.LookupFrpKey(string(c.side), "visitors[].plugin")
		s.leaveOut(h.Msg)
	case "visitors[].bindPort":
		if n := v.v.(int64); n < 1 {
			s.leaveOut(fmt.Sprintf("bindPort = %d (frp: no listener, only connections passed on by another visitor) has no equivalent: a hop visitor listens on bindAddr:bindPort, 1-65535", n))
		}
	}
	h, hk, ok := c.lookup(gk)
	if !ok {
		c.note(s, dk, v.line, "hop has no equivalent of this key; remove it", true)
		return
	}
	if h.To == "" {
		c.note(s, dk, v.line, h.Msg, false)
		return
	}
	to := h.To
	if s.array != "" {
		to = strings.TrimPrefix(to, s.array+"[].")
	}
	val, remark, err := c.value(gk, v, h, hk)
	if err != nil {
		c.errorf(ErrValue, v.line, dk, "%v", err)
		return
	}
	if val == nil {
		c.note(s, dk, v.line, remark, false)
		return
	}
	if remark == envRemark {
		c.usedEnv, remark = true, ""
	}
	if gk == "log.level" && val == "trace" {
		val, remark = "debug", "hop has no trace level; debug is its most detailed"
	}
	c.converted(s, dk, v.line, to, val, remark)
}

// value converts v, frp's value of gk, to hop's kind hk. A nil value with
// a remark means hop's default applies.
func (c *converter) value(gk string, v *value, h config.FrpKey, hk string) (any, string, error) {
	switch hk {
	case config.KindDuration:
		if sv, ok := v.v.(string); ok { // hop duration from an frp string: none today
			return strOrErr(convertString(sv))
		}
		n := v.v.(int64)
		unit := h.Unit
		if unit == "" {
			unit = "s"
		}
		switch {
		case h.PerHour && n >= 1:
			return formatDuration(time.Hour / time.Duration(n)), fmt.Sprintf("frp's %d attempts an hour", n), nil
		case h.PerHour:
			return nil, fmt.Sprintf("frp's %d attempts an hour has no equivalent; hop's default time between attempts applies", n), nil
		case n < 0 && h.NegOff:
			return "0s", `frp turned it off with a negative number, hop with "0s"`, nil
		case n < 0:
			return nil, "", fmt.Errorf("%d is negative; write the number of %s, or leave the key out", n, map[string]string{"s": "seconds", "ms": "milliseconds"}[unit])
		case n == 0:
			return nil, "0 means frp's default; hop's default applies", nil
		}
		return strconv.FormatInt(n, 10) + unit, "", nil
	case config.KindInt:
		n := v.v.(int64)
		if h.To == "maxProxiesPerClient" && n <= 0 {
			return nil, fmt.Sprintf(`frp's %d is no limit, and hop has no "unlimited": its default of %d proxies per client applies; set maxProxiesPerClient to allow more`, n, config.DefaultMaxProxiesPerClient), nil
		}
		if h.Msg != "" {
			return n, "hop calls this " + h.To + ", " + h.Msg, nil
		}
		return n, "", nil
	case config.KindString:
		return strOrErr(convertString(v.v.(string)))
	case config.KindBool:
		return v.v.(bool), "", nil
	case config.KindStrings:
		var out []string
		for _, e := range v.v.([]*value) {
			s, r, err := convertString(e.v.(string))
			c.usedEnv = c.usedEnv || r == envRemark
			if err != nil {
				return nil, "", err
			}
			out = append(out, s)
		}
		return out, "", nil
	case config.KindMap:
		o := v.v.(*object)
		out := make(map[string]string, len(o.keys))
		for _, k := range o.keys {
			s, r, err := convertString(o.m[k].v.(string))
			c.usedEnv = c.usedEnv || r == envRemark
			if err != nil {
				return nil, "", err
			}
			out[k] = s
		}
		return out, "", nil
	case config.KindTables:
		var out []*object
		for _, e := range v.v.([]*value) {
			out = append(out, e.v.(*object))
		}
		return out, "", nil
	}
	return nil, "", fmt.Errorf("hop's %s is %s, which frp's value cannot become", h.To, hk)
}

// envRemark marks a value with an environment reference; the output
// explains ${NAME} once, in its heading.
const envRemark = "\x00env"

var (
	frpEnvRef   = regexp.MustCompile(`\{\{-?\s*\.Envs\.([A-Za-z_][A-Za-z0-9_]*)\s*-?\}\}`)
	frpTemplate = regexp.MustCompile(`\{\{.*?\}\}`)
)

// convertString turns frp's {{ .Envs.NAME }} into hop's ${NAME}, and a
// literal "${" into "$${" (which hop reads as "${").
func convertString(s string) (string, string, error) {
	out := strings.ReplaceAll(s, "${", "$${")
	remark := ""
	if frpEnvRef.MatchString(out) {
		out = frpEnvRef.ReplaceAllString(out, "$${$1}")
		remark = envRemark
	}
	if m := frpTemplate.FindString(out); m != "" || strings.Contains(out, "{{") {
		if m == "" {
			m = "{{"
		}
		return "", "", fmt.Errorf("%s: frp's template %s cannot be converted (hop expands only ${NAME}, the environment variable NAME); write the value out", tomlString(s), m)
	}
	return out, remark, nil
}

func formatDuration(d time.Duration) string {
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func strOrErr(s, remark string, err error) (any, string, error) {
	if err != nil {
		return nil, "", err
	}
	return s, remark, nil
}
