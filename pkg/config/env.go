package config

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
)

// expandEnv replaces ${NAME} in s with the value of NAME; $${ is a literal
// ${. It returns the expanded string and one message per bad reference.
func expandEnv(s string, lookup func(string) (string, bool)) (string, []string) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	var probs []string
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			break
		}
		if i > 0 && s[i-1] == '$' { // $${ → ${
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			probs = append(probs, `"${" without a closing "}"; write ${NAME}, or $${ for a literal "${"`)
			break
		}
		ref := s[i : i+end+1]
		name := ref[2 : len(ref)-1]
		s = s[i+end+1:]
		if !validEnvName(name) {
			probs = append(probs, fmt.Sprintf(`%s is not a valid variable reference; names are letters, digits and _ not starting with a digit (write $${ for a literal "${")`, strconv.Quote(ref)))
			continue
		}
		v, ok := lookup(name)
		if !ok {
			probs = append(probs, fmt.Sprintf("environment variable %s is not set (referenced as %s); export it or write the value directly", name, ref))
			continue
		}
		b.WriteString(v)
	}
	return b.String(), probs
}

var (
	frpEnvRef   = regexp.MustCompile(`\{\{-?\s*\.Envs\.([A-Za-z_][A-Za-z0-9_]*)\s*-?\}\}`)
	frpTemplate = regexp.MustCompile(`\{\{-?\s*(\.|range\b|end\b|if\b|parseNumberRange)[^}]*\}\}`)
)

// templates reports frp's Go templates in s ("{{ .Envs.HOP_TOKEN }}"),
// which hop leaves as they are: such a token or address would be used
// literally.
func templates(s string) []string {
	if !strings.Contains(s, "{{") {
		return nil
	}
	var probs []string
	for _, m := range frpEnvRef.FindAllStringSubmatch(s, -1) {
		probs = append(probs, fmt.Sprintf("hop does not expand %s (frp's template); write ${%s}", m[0], m[1]))
	}
	if len(probs) == 0 {
		if m := frpTemplate.FindString(s); m != "" {
			probs = append(probs, fmt.Sprintf("hop does not expand %s (frp's template); write the value out, or ${NAME} for the environment variable NAME", m))
		}
	}
	return probs
}

func validEnvName(name string) bool {
	if name == "" {
		return false
	}
	for i, c := range name {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// expandAll expands the environment references in every string of the raw
// shape v, reporting bad references at their key.
func expandAll(r *reporter, v reflect.Value, key string, lookup func(string) (string, bool)) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			expandAll(r, v.Elem(), key, lookup)
		}
	case reflect.String:
		s, probs := expandEnv(v.String(), lookup)
		probs = append(templates(v.String()), probs...)
		line, off := r.ix.pos(key)
		for _, m := range probs {
			r.addAt(line, off, key, m)
		}
		if len(probs) > 0 {
			r.suppress(key)
			return
		}
		v.SetString(s)
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			if name := tomlName(t.Field(i)); name != "" {
				expandAll(r, v.Field(i), join(key, name), lookup)
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			expandAll(r, v.Index(i), key+"["+strconv.Itoa(i)+"]", lookup)
		}
	case reflect.Map: // string values, such as requestHeaders.set
		if v.Type().Elem().Kind() != reflect.String {
			return
		}
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			expandAll(r, e, join(key, k.String()), lookup)
			v.SetMapIndex(k, e)
		}
	}
}

// tomlName returns the TOML key of a struct field, or "" for none.
func tomlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		return f.Name
	}
	return name
}
