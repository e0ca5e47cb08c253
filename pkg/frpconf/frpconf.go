// Package frpconf converts a configuration file of frp (v0.52 and later:
// TOML, YAML or JSON) into the equivalent hop configuration (TOML), for
// hopc migrate and hops migrate.
//
// Every key of the input is either converted (renamed where hop calls it
// otherwise, integer seconds turned into duration strings, frp's
// "{{ .Envs.NAME }}" into hop's "${NAME}") or written as a comment in the
// output that says why hop has no equivalent and what to do instead. What
// hop does with each of frp's keys comes from one table, in pkg/config
// (see [config.LookupFrpKey]); keys hop spells as frp does are copied.
//
// The input is strict as frp's (its default --strict_config): an unknown
// key, a value of the wrong type or a template that cannot be converted is
// an error naming the key and its line. frp's old INI format ([common]) is
// refused with [ErrINI].
package frpconf

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// Side says which of frp's programs a file configures.
type Side string

// The two sides: frpc's file becomes hopc's, frps's becomes hops's.
const (
	Client Side = "hopc"
	Server Side = "hops"
)

// Format is the syntax of an frp file.
type Format string

// The formats frp reads.
const (
	TOML Format = "toml"
	YAML Format = "yaml"
	JSON Format = "json"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrFormat: the file name's extension is not one of frp's formats.
	ErrFormat = errors.New("unknown file format")
	// ErrINI: the file is in frp's INI format (before v0.52).
	ErrINI = errors.New("frp's INI format is not supported")
	// ErrSyntax: the file does not parse in its format.
	ErrSyntax = errors.New("cannot parse the frp config")
	// ErrUnknownKey: a key that frp does not have (often a typo).
	ErrUnknownKey = errors.New("unknown frp key")
	// ErrValue: a value of the wrong type, or one that cannot be
	// converted (a template other than {{ .Envs.NAME }}).
	ErrValue = errors.New("bad frp value")
)

// iniHelp is appended to ErrINI.
const iniHelp = "rewrite it in frp's TOML format first (frp v0.52+ reads it; check it with frpc verify -c FILE or frps verify -c FILE, and see frp's conf/frpc_full_example.toml for the new names), then run migrate on that file"

// FormatOf returns the format of the file at path, by its extension.
func FormatOf(path string) (Format, error) {
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".toml":
		return TOML, nil
	case ".yaml", ".yml":
		return YAML, nil
	case ".json":
		return JSON, nil
	case ".ini":
		return "", fmt.Errorf("%s: %w: %s", path, ErrINI, iniHelp)
	default:
		return "", fmt.Errorf("%s: %w %q; frp's files end in .toml, .yaml, .yml or .json (rename the file to say which it is)", path, ErrFormat, ext)
	}
}

// Report lists what became of each key of the input.
type Report struct {
	// Keys are the input's keys (leaves, and each entry of a table of
	// names such as metadatas), in document order.
	Keys []Key
}

// Key is one key of the input and what became of it.
type Key struct {
	// Key is frp's key path as in the input: "proxies[2].transport.useEncryption".
	Key string
	// Line is the key's line in the input (1-based; 0 when unknown).
	Line int
	// To is hop's key path the value was written to ("heartbeat.timeout",
	// "proxies[2].plugin.type"); "" when it was not converted.
	To string
	// Note says why the key is not converted and what to do instead, or
	// remarks on its conversion; the output has it as a comment.
	Note string
	// Unmapped is true when hop's table had nothing to say about the key
	// (a gap in it: the Note is generic).
	Unmapped bool
}

// Commented returns the keys that were not converted.
func (r *Report) Commented() []Key {
	var out []Key
	for _, k := range r.Keys {
		if k.To == "" {
			out = append(out, k)
		}
	}
	return out
}

// iniSection matches the [common] section of frp's INI files.
var iniSection = regexp.MustCompile(`(?m)^[ \t]*\[common\][ \t]*\r?$`)

// Convert converts data, an frp config of format f for side, into a hop
// config. The report lists what became of every key. Any error wraps one
// of the sentinel errors and names the lines at fault.
func Convert(data []byte, f Format, side Side) ([]byte, *Report, error) {
	if side != Client && side != Server {
		return nil, nil, fmt.Errorf("frpconf: side %q is neither %q nor %q", side, Client, Server)
	}
	if iniSection.Match(data) {
		return nil, nil, fmt.Errorf("%w: the file has a [common] section; %s", ErrINI, iniHelp)
	}
	var root *object
	var err error
	switch f {
	case TOML:
		root, err = decodeTOML(data)
	case YAML:
		root, err = decodeYAML(data)
	case JSON:
		root, err = decodeJSON(data)
	default:
		return nil, nil, fmt.Errorf("%w %q; use toml, yaml or json", ErrFormat, f)
	}
	if err != nil {
		return nil, nil, err
	}
	c := &converter{side: side, schema: schemas[side], tables: tables[side]}
	c.check(root, "", "")
	if len(c.errs) > 0 {
		return nil, nil, errors.Join(c.errs...)
	}
	c.convert(root)
	if len(c.errs) > 0 {
		return nil, nil, errors.Join(c.errs...)
	}
	return c.emit(), &Report{Keys: c.keys}, nil
}
