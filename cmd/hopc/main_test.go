package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/hopproxy/hop/pkg/buildinfo"
)

// TestVersion: every spelling prints the build's one line and exits 0,
// without a config file; with extra arguments it is a usage error.
func TestVersion(t *testing.T) {
	want := buildinfo.String("hopc") + "\n"
	if !strings.HasPrefix(want, "hopc ") || !strings.Contains(want, "(commit ") {
		t.Fatalf("version line %q", want)
	}
	for _, args := range [][]string{{"version"}, {"-v"}, {"--version"}, {"-version"}, {"-v", "-c", "/nonexistent.toml"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, &out); err != nil {
			t.Errorf("%v: %v", args, err)
		}
		if out.String() != want {
			t.Errorf("%v printed %q, want %q", args, out.String(), want)
		}
	}
	for _, args := range [][]string{{"version", "extra"}, {"-v", "extra"}} {
		var out bytes.Buffer
		err := run(context.Background(), args, &out)
		if err == nil || !strings.Contains(err.Error(), "usage:") {
			t.Errorf("%v: err = %v, want the usage", args, err)
		}
	}
}

// TestVersionStamped: the -X variables of the linker show.
func TestVersionStamped(t *testing.T) {
	oldV, oldC := buildinfo.Version, buildinfo.Commit
	t.Cleanup(func() { buildinfo.Version, buildinfo.Commit = oldV, oldC })
	buildinfo.Version, buildinfo.Commit = "v0.3.0", "abc1234"
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--version"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "hopc v0.3.0 (commit abc1234, go") {
		t.Fatalf("printed %q", out.String())
	}
}

func TestUsageNamesVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "hopc version") {
		t.Fatalf("usage:\n%s", out.String())
	}
}
