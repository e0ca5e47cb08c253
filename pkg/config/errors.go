package config

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Sentinel errors. Match them with errors.Is.
var (
	// ErrInvalid is matched by every error that reports a problem in the
	// configuration itself (syntax, unknown key, wrong type, bad value), as
	// opposed to failing to read the file. Such errors are *Error.
	ErrInvalid = errors.New("invalid configuration")
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	File string // file name as given to Load/Parse; "" for Validate
	Line int    // 1-based line of the offending key; 0 when unknown
	Key  string // key path such as "proxies[1].remotePort"; "" for syntax errors
	Msg  string // what is wrong and how to fix it
}

// String formats p as "file:line: key: msg", leaving out the parts that are
// empty.
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
	} else if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error lists every problem found in a configuration. It matches ErrInvalid.
type Error struct {
	Problems []Problem
}

// Error prints one problem per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// reporter collects problems. It knows where keys are in the document when
// it has an index (parsing a file) and reports them without lines when it
// does not (Validate on a config built in code).
type reporter struct {
	file     string
	ix       *index // nil for Validate
	problems []problem
	warnings []problem
	failed   map[string]bool // keys already reported; checks involving them are skipped
	trees    map[string]bool // keys below which nothing is reported
}

// problem is a Problem and its document offset, to sort problems on the
// same line.
type problem struct {
	Problem
	off int
}

func newReporter(file string, ix *index) *reporter {
	return &reporter{file: file, ix: ix, failed: make(map[string]bool), trees: make(map[string]bool)}
}

// add reports a problem with key unless a problem about key was already
// reported. It marks key as failed.
func (r *reporter) add(key, format string, args ...any) {
	if r.failed[key] || r.inTree(key) {
		return
	}
	r.failed[key] = true
	line, off := r.ix.pos(key)
	r.addAt(line, off, key, fmt.Sprintf(format, args...))
}

// addAt reports a problem at an explicit place (line 0 = unknown) without
// marking any key as failed.
func (r *reporter) addAt(line, off int, key, msg string) {
	r.problems = append(r.problems, problem{Problem{File: r.file, Line: line, Key: key, Msg: msg}, off})
}

// warn records a remark about key that does not make the config invalid.
func (r *reporter) warn(key, format string, args ...any) {
	line, off := r.ix.pos(key)
	r.warnings = append(r.warnings, problem{Problem{File: r.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)}, off})
}

// warningLines returns the warnings formatted like problems, in document
// order, or nil when there are none.
func (r *reporter) warningLines() []string {
	if len(r.warnings) == 0 {
		return nil
	}
	ps := sortProblems(r.warnings)
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return lines
}

// ok reports whether none of keys has had a problem reported, so that a
// check combining them is meaningful.
func (r *reporter) ok(keys ...string) bool {
	for _, k := range keys {
		if r.failed[k] || r.inTree(k) {
			return false
		}
	}
	return true
}

// at returns " (line N)" for a key found in the document, or "".
func (r *reporter) at(key string) string {
	if l := r.ix.line(key); l > 0 {
		return fmt.Sprintf(" (line %d)", l)
	}
	return ""
}

// err returns the problems as an *Error sorted by line (problems without a
// line last), or nil when there are none.
func (r *reporter) err() error {
	if len(r.problems) == 0 {
		return nil
	}
	ps := sortProblems(r.problems)
	e := &Error{Problems: make([]Problem, len(ps))}
	for i, p := range ps {
		e.Problems[i] = p.Problem
	}
	return e
}

// sortProblems returns ps sorted by line (those without a line last).
func sortProblems(ps []problem) []problem {
	ps = slices.Clone(ps)
	slices.SortStableFunc(ps, func(a, b problem) int {
		return cmp.Or(cmp.Compare(sortLine(a.Line), sortLine(b.Line)), cmp.Compare(a.off, b.off))
	})
	return ps
}

func sortLine(l int) int {
	if l <= 0 {
		return int(^uint(0) >> 1)
	}
	return l
}

// suppressTree marks key and every key below it as failed.
func (r *reporter) suppressTree(key string) {
	if key != "" {
		r.trees[key] = true
	}
}

func (r *reporter) inTree(key string) bool {
	for ; key != ""; key = parentPath(key) {
		if r.trees[key] {
			return true
		}
	}
	return false
}

// suppress marks keys as failed without reporting anything, because a
// problem covering them was reported under another key.
func (r *reporter) suppress(keys ...string) {
	for _, k := range keys {
		r.failed[k] = true
	}
}
