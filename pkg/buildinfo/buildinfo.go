// Package buildinfo says which build of hop is running: the version and
// commit stamped in at build time, and the Go toolchain and platform.
//
// Set them with the linker:
//
//	go build -ldflags "-X github.com/hopproxy/hop/pkg/buildinfo.Version=v0.3.0 -X github.com/hopproxy/hop/pkg/buildinfo.Commit=$(git rev-parse --short HEAD)" ./cmd/...
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release, e.g. "v0.3.0"; "dev" when not set at build time.
var Version = "dev"

// Commit is the source revision. When not set at build time it is the
// vcs.revision the Go toolchain recorded (a build inside a git checkout
// without -buildvcs=false), shortened to 12 characters, else "unknown".
var Commit = ""

// GoVersion is the toolchain that built the binary; runtime.Version()
// when not set at build time.
var GoVersion = ""

// readBuildInfo is debug.ReadBuildInfo, replaced in tests.
var readBuildInfo = debug.ReadBuildInfo

// Info is one build's identity.
type Info struct {
	Program   string // "hops" or "hopc"
	Version   string
	Commit    string
	GoVersion string
	Platform  string // GOOS/GOARCH
}

// Get returns the identity of this build for program.
func Get(program string) Info {
	return Info{Program: program, Version: orDefault(Version, "dev"), Commit: commit(),
		GoVersion: orDefault(GoVersion, runtime.Version()), Platform: runtime.GOOS + "/" + runtime.GOARCH}
}

// String is the line `hops version` prints:
// "hops v0.3.0 (commit abc1234, go1.26.8 linux/amd64)".
func (i Info) String() string {
	return fmt.Sprintf("%s %s (commit %s, %s %s)", i.Program, i.Version, i.Commit, i.GoVersion, i.Platform)
}

// String is Get(program).String().
func String(program string) string { return Get(program).String() }

func commit() string {
	if Commit != "" {
		return Commit
	}
	if bi, ok := readBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				rev := s.Value
				if len(rev) > 12 {
					rev = rev[:12]
				}
				return rev
			}
		}
	}
	return "unknown"
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
