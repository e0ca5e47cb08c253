package buildinfo

import (
	"runtime"
	"runtime/debug"
	"testing"
)

// set replaces the build variables and readBuildInfo for one test.
func set(t *testing.T, version, commit, goVersion string, bi *debug.BuildInfo) {
	oldV, oldC, oldG, oldR := Version, Commit, GoVersion, readBuildInfo
	t.Cleanup(func() { Version, Commit, GoVersion, readBuildInfo = oldV, oldC, oldG, oldR })
	Version, Commit, GoVersion = version, commit, goVersion
	readBuildInfo = func() (*debug.BuildInfo, bool) { return bi, bi != nil }
}

func TestString(t *testing.T) {
	platform := runtime.GOOS + "/" + runtime.GOARCH
	rev := &debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"}}}
	for _, c := range []struct {
		name                 string
		version, commit, gov string
		bi                   *debug.BuildInfo
		want                 string
	}{
		{"stamped", "v0.3.0", "abc1234", "go1.99.1", rev, "hops v0.3.0 (commit abc1234, go1.99.1 " + platform + ")"},
		{"defaults without build info", "dev", "", "", nil, "hops dev (commit unknown, " + runtime.Version() + " " + platform + ")"},
		{"vcs revision", "dev", "", "", rev, "hops dev (commit 0123456789ab, " + runtime.Version() + " " + platform + ")"},
		{"build info without vcs", "", "", "", &debug.BuildInfo{}, "hops dev (commit unknown, " + runtime.Version() + " " + platform + ")"},
	} {
		t.Run(c.name, func(t *testing.T) {
			set(t, c.version, c.commit, c.gov, c.bi)
			if got := String("hops"); got != c.want {
				t.Errorf("got  %q\nwant %q", got, c.want)
			}
		})
	}
}
