// Package systemd holds no Go code: its test checks the unit files next
// to it, hops.service and hopc.service, with systemd-analyze. It lives
// beside the units rather than in tests/e2e because it needs neither the
// built binaries nor the e2e harness.
package systemd

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// maxExposure is the highest overall exposure level of
// `systemd-analyze security` a unit may have (0 safest, 10 unsandboxed).
const maxExposure = 3.0

// required are directives each unit must have, as written.
var required = map[string][]string{
	"hops": {
		"ExecStart=/usr/local/bin/hops -c /etc/hop/hops.toml",
		"AmbientCapabilities=CAP_NET_BIND_SERVICE",
		"CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
	},
	"hopc": {
		"ExecStart=/usr/local/bin/hopc -c /etc/hop/hopc.toml",
		"CapabilityBoundingSet=\n",
		"AmbientCapabilities=\n",
	},
	"": { // both
		"ExecReload=/bin/kill -HUP $MAINPID",
		"DynamicUser=yes",
		"ProtectSystem=strict",
		"ProtectHome=yes",
		"PrivateTmp=yes",
		"NoNewPrivileges=yes",
		"RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
		"SystemCallFilter=@system-service",
		"Restart=on-failure",
		"RestartSec=",
		"LimitNOFILE=65536",
		"ConfigurationDirectory=hop",
		"LogsDirectory=",
		"EnvironmentFile=-/etc/hop/",
	},
}

func analyze(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not found (install systemd to check the units; CI has it)")
	}
	return bin
}

// run runs systemd-analyze in dir and returns its combined output.
func run(t *testing.T, bin, dir string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// unitCopy writes the unit of prog into a temporary directory with its
// ExecStart binary replaced by an executable that exists there, since
// verify checks that it does. It returns the directory.
func unitCopy(t *testing.T, prog string, edit func(string) string) string {
	t.Helper()
	text, err := os.ReadFile(prog + ".service")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fake := filepath.Join(dir, prog)
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	unit := strings.ReplaceAll(string(text), "/usr/local/bin/"+prog, fake)
	if edit != nil {
		unit = edit(unit)
	}
	if err := os.WriteFile(filepath.Join(dir, prog+".service"), []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

var exposureRE = regexp.MustCompile(`Overall exposure level for [^:]+: ([0-9.]+)`)

func TestUnits(t *testing.T) {
	bin := analyze(t)
	for _, prog := range []string{"hops", "hopc"} {
		t.Run(prog, func(t *testing.T) {
			text, err := os.ReadFile(prog + ".service")
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range append(required[prog], required[""]...) {
				if !strings.Contains(string(text), d) {
					t.Errorf("%s.service lacks %q", prog, strings.TrimSpace(d))
				}
			}
			dir := unitCopy(t, prog, nil)
			// verify exits 0 on unknown keys too, with a warning: any
			// output is a failure.
			if out, err := run(t, bin, dir, "verify", "./"+prog+".service"); err != nil || out != "" {
				t.Errorf("systemd-analyze verify: %v\n%s", err, out)
			}
			out, err := run(t, bin, dir, "security", "--offline=true", "./"+prog+".service")
			if err != nil {
				t.Fatalf("systemd-analyze security: %v\n%s", err, out)
			}
			m := exposureRE.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no overall exposure level in:\n%s", out)
			}
			level, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s.service exposure %.1f", prog, level)
			if level > maxExposure {
				t.Errorf("%s.service: exposure %.1f > %.1f:\n%s", prog, level, maxExposure, out)
			}
		})
	}
}

// TestVerifyCatchesMistakes: the checks above fail on a misspelt key and
// on an unsandboxed unit, so that they are not vacuous on this systemd.
func TestVerifyCatchesMistakes(t *testing.T) {
	bin := analyze(t)
	dir := unitCopy(t, "hops", func(u string) string {
		return strings.Replace(u, "ProtectSystem=strict", "ProtectSystm=strict", 1)
	})
	if out, err := run(t, bin, dir, "verify", "./hops.service"); err == nil && !strings.Contains(out, "ProtectSystm") {
		t.Errorf("verify said nothing about a misspelt key: %v %q", err, out)
	}
	bare := unitCopy(t, "hops", func(u string) string {
		return u[:strings.Index(u, "DynamicUser=")] + "\n[Install]\nWantedBy=multi-user.target\n"
	})
	out, err := run(t, bin, bare, "security", "--offline=true", "./hops.service")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	m := exposureRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no overall exposure level in:\n%s", out)
	}
	if level, _ := strconv.ParseFloat(m[1], 64); level <= maxExposure {
		t.Errorf("an unsandboxed unit scored %.1f", level)
	}
}
