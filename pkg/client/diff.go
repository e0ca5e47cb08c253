package client

import (
	"reflect"
	"strings"

	"github.com/hopproxy/hop/pkg/config"
)

// configDiff is what a reload changes, as a diff of registries (model:
// cloudflared's orchestrator): the proxies and visitors to stop, to
// start, and to restart (stop, then start with the new entry), by name,
// and the keys outside them whose new values only a restart applies.
type configDiff struct {
	addProxies, removeProxies, changeProxies    []string
	addVisitors, removeVisitors, changeVisitors []string
	unchanged                                   int      // proxies and visitors kept as they run
	restart                                     []string // dotted TOML keys, e.g. "transport.tls.serverName"
}

// diffConfigs compares a running config with a new one. Entries are
// matched by name; an entry whose fields differ in any way is changed.
// Added and changed names are in the new file's order, removed ones in the
// old's.
func diffConfigs(old, new *config.ClientConfig) configDiff {
	var d configDiff
	d.addProxies, d.removeProxies, d.changeProxies, d.unchanged = diffEntries(old.Proxies, new.Proxies, func(p config.ProxyConfig) string { return p.Name })
	var n int
	d.addVisitors, d.removeVisitors, d.changeVisitors, n = diffEntries(old.Visitors, new.Visitors, func(v config.VisitorConfig) string { return v.Name })
	d.unchanged += n
	d.restart = changedKeys("", reflect.ValueOf(*old), reflect.ValueOf(*new))
	return d
}

func diffEntries[E any](old, new []E, name func(E) string) (added, removed, changed []string, unchanged int) {
	was := make(map[string]E, len(old))
	for _, e := range old {
		was[name(e)] = e
	}
	is := make(map[string]bool, len(new))
	for _, e := range new {
		n := name(e)
		is[n] = true
		o, ok := was[n]
		switch {
		case !ok:
			added = append(added, n)
		case !reflect.DeepEqual(o, e):
			changed = append(changed, n)
		default:
			unchanged++
		}
	}
	for _, e := range old {
		if !is[name(e)] {
			removed = append(removed, name(e))
		}
	}
	return added, removed, changed, unchanged
}

// changedKeys lists the TOML keys whose values differ between two structs
// of the same type, descending into tables (struct fields with toml-tagged
// fields of their own). The proxies and visitors are diffEntries'. Values
// are never named: they may be secrets (auth.token).
func changedKeys(prefix string, a, b reflect.Value) []string {
	var keys []string
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if !f.IsExported() || key == "" || key == "-" || key == "proxies" || key == "visitors" {
			continue
		}
		x, y := a.Field(i), b.Field(i)
		if isTable(f.Type) {
			keys = append(keys, changedKeys(prefix+key+".", x, y)...)
		} else if !reflect.DeepEqual(x.Interface(), y.Interface()) {
			keys = append(keys, prefix+key)
		}
	}
	return keys
}

// isTable reports whether t is a TOML table of the config: a struct with
// toml-tagged fields (config.Duration is a struct without, and a value).
func isTable(t reflect.Type) bool {
	if t.Kind() != reflect.Struct {
		return false
	}
	for i := range t.NumField() {
		if t.Field(i).Tag.Get("toml") != "" {
			return true
		}
	}
	return false
}

// result is the diff as Reload reports it.
func (d configDiff) result() ReloadResult {
	r := ReloadResult{Unchanged: d.unchanged, NeedsRestart: append([]string{}, d.restart...)} // [] in JSON, not null
	name := func(kind string, names []string) []string {
		out := make([]string, len(names))
		for i, n := range names {
			out[i] = kind + ":" + n
		}
		return out
	}
	r.Added = append(name("proxy", d.addProxies), name("visitor", d.addVisitors)...)
	r.Removed = append(name("proxy", d.removeProxies), name("visitor", d.removeVisitors)...)
	r.Changed = append(name("proxy", d.changeProxies), name("visitor", d.changeVisitors)...)
	return r
}

// equalProxy reports whether two entries of a proxy are the same: a
// running proxy whose entry is equal is kept as it is.
func equalProxy(a, b config.ProxyConfig) bool { return reflect.DeepEqual(a, b) }
