package frpconf

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// emit writes the sections as hop's TOML, with a comment for each key not
// converted.
func (c *converter) emit() []byte {
	var b strings.Builder
	prog := map[Side]string{Client: "frpc", Server: "frps"}[c.side]
	fmt.Fprintf(&b, "# %s config converted from %s's by %s migrate. Check it with: %s verify -c FILE\n", c.side, prog, c.side, c.side)
	if c.usesEnv() {
		b.WriteString("# ${NAME} is the environment variable NAME (frp's {{ .Envs.NAME }}): set each one when hop starts.\n")
	}
	c.comments(&b, c.top, "")
	c.writeTop(&b, c.top)
	for _, s := range c.proxies {
		c.writeEntry(&b, s)
	}
	for _, s := range c.visitors {
		c.writeEntry(&b, s)
	}
	return []byte(b.String())
}

func (c *converter) usesEnv() bool { return c.usedEnv }

// comments writes the notes of the keys of s, one comment line each.
func (c *converter) comments(b *strings.Builder, s *section, indent string) {
	first := true
	for _, ki := range s.keys {
		k := c.keys[ki]
		if k.Note == "" {
			continue
		}
		if first && s.array == "" {
			b.WriteString("#\n# frp's keys and what became of them:\n")
		}
		first = false
		verb := "not converted"
		if k.To != "" {
			verb = "→ " + k.To
			if s.array != "" {
				_, verb, _ = strings.Cut(verb, "].")
				verb = "→ " + verb
			}
		}
		fmt.Fprintf(b, "%s# %s (line %d) %s: %s\n", indent, commentText(k.Key), k.Line, verb, commentText(k.Note))
	}
}

func commentText(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
}

func (c *converter) writeTop(b *strings.Builder, s *section) {
	b.WriteString("\n")
	var groups []string
	byGroup := make(map[string][]entry)
	for _, e := range s.entries {
		g, rest, dotted := strings.Cut(e.path, ".")
		if !dotted {
			writeKV(b, e.path, e.val)
			continue
		}
		if _, ok := byGroup[g]; !ok {
			groups = append(groups, g)
		}
		byGroup[g] = append(byGroup[g], entry{path: rest, val: e.val})
	}
	for _, g := range groups {
		fmt.Fprintf(b, "\n[%s]\n", displayKey(g))
		for _, e := range byGroup[g] {
			writeKV(b, e.path, e.val)
		}
	}
}

func (c *converter) writeEntry(b *strings.Builder, s *section) {
	b.WriteString("\n")
	if s.skip != "" {
		fmt.Fprintf(b, "# [[%s]] entry %d of the frp file is left out: %s\n", s.array, s.index, commentText(s.skip))
		var names []string
		for _, ki := range s.keys {
			names = append(names, fmt.Sprintf("%s (line %d)", commentText(c.keys[ki].Key), c.keys[ki].Line))
		}
		fmt.Fprintf(b, "# Its keys: %s\n", strings.Join(names, ", "))
		return
	}
	fmt.Fprintf(b, "[[%s]]\n", s.array)
	c.comments(b, s, "")
	var plugin []entry
	order := append([]entry(nil), s.entries...)
	rank := func(p string) int {
		switch p {
		case "name":
			return 0
		case "type":
			return 1
		}
		return 2
	}
	sort.SliceStable(order, func(i, j int) bool { return rank(order[i].path) < rank(order[j].path) })
	for _, e := range order {
		if rest, ok := strings.CutPrefix(e.path, "plugin."); ok {
			plugin = append(plugin, entry{path: rest, val: e.val})
			continue
		}
		writeKV(b, e.path, e.val)
	}
	if len(plugin) > 0 {
		fmt.Fprintf(b, "[%s.plugin]\n", s.array)
		for _, e := range plugin {
			writeKV(b, e.path, e.val)
		}
	}
}

// writeKV writes path = val, path being hop's dotted key path.
func writeKV(b *strings.Builder, path string, val any) {
	parts := strings.Split(path, ".")
	for i, p := range parts {
		parts[i] = displayKey(p)
	}
	fmt.Fprintf(b, "%s = %s\n", strings.Join(parts, "."), tomlValue(val))
}

func tomlValue(val any) string {
	switch v := val.(type) {
	case string:
		return tomlString(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case bool:
		return strconv.FormatBool(v)
	case []string:
		q := make([]string, len(v))
		for i, s := range v {
			q[i] = tomlString(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	case map[string]string:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		kv := make([]string, len(keys))
		for i, k := range keys {
			kv[i] = displayKey(k) + " = " + tomlString(v[k])
		}
		if len(kv) == 0 {
			return "{}"
		}
		return "{ " + strings.Join(kv, ", ") + " }"
	case []*object:
		els := make([]string, len(v))
		for i, o := range v {
			kv := make([]string, len(o.keys))
			for j, k := range o.keys {
				kv[j] = displayKey(k) + " = " + scalar(o.m[k].v)
			}
			els[i] = "{ " + strings.Join(kv, ", ") + " }"
		}
		return "[" + strings.Join(els, ", ") + "]"
	}
	return tomlString(fmt.Sprint(val))
}

// scalar writes a checked scalar of the input (the keys of allowPorts).
func scalar(v any) string {
	switch t := v.(type) {
	case string:
		return tomlString(t)
	case int64:
		return strconv.FormatInt(t, 10)
	case bool:
		return strconv.FormatBool(t)
	}
	return tomlString(fmt.Sprint(v))
}
