// Package buildinfotest checks how a hop command prints its version, for
// the tests of cmd/hops and cmd/hopc.
package buildinfotest

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hopproxy/hop/pkg/buildinfo"
)

// Run is a command's run function: its arguments, where it prints.
type Run func(args []string, stdout *bytes.Buffer) error

// CheckVersion: every spelling (version, -v, --version, -version) prints
// the build's one line and returns nil, without a config file; with extra
// arguments it is a usage error; the linker's -X variables show; and the
// usage names the version command.
func CheckVersion(t *testing.T, program string, run Run) {
	t.Helper()
	want := buildinfo.String(program) + "\n"
	if !strings.HasPrefix(want, program+" ") || !strings.Contains(want, "(commit ") {
		t.Fatalf("version line %q", want)
	}
	for _, args := range [][]string{{"version"}, {"-v"}, {"--version"}, {"-version"}, {"-v", "-c", "/nonexistent.toml"}} {
		var out bytes.Buffer
		if err := run(args, &out); err != nil {
			t.Errorf("%v: %v", args, err)
		}
		if out.String() != want {
			t.Errorf("%v printed %q, want %q", args, out.String(), want)
		}
	}
	for _, args := range [][]string{{"version", "extra"}, {"-v", "extra"}} {
		var out bytes.Buffer
		if err := run(args, &out); err == nil || !strings.Contains(err.Error(), "usage:") {
			t.Errorf("%v: err = %v, want the usage", args, err)
		}
	}

	oldV, oldC := buildinfo.Version, buildinfo.Commit
	defer func() { buildinfo.Version, buildinfo.Commit = oldV, oldC }()
	buildinfo.Version, buildinfo.Commit = "v0.3.0", "abc1234"
	var out bytes.Buffer
	if err := run([]string{"--version"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), program+" v0.3.0 (commit abc1234, go") {
		t.Errorf("stamped build printed %q", out.String())
	}

	out.Reset()
	if err := run([]string{"-h"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), program+" version") {
		t.Errorf("usage does not name %q:\n%s", program+" version", out.String())
	}
}
