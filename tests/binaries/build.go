// Package binaries builds the real hops and hopc for the tests that run
// them as processes (tests/e2e, tests/autokeepalive), with -race when the
// test binary itself has it.
package binaries

import (
	"fmt"
	"os"
	"os/exec"
)

// Build builds hops and hopc into a new temporary directory and returns
// it; the caller removes it. The go command's output goes to stderr.
func Build() (dir string, err error) {
	dir, err = os.MkdirTemp("", "hop-test-bin-")
	if err != nil {
		return "", err
	}
	args := []string{"build", "-o", dir + "/"}
	if Race {
		args = append(args, "-race")
	}
	args = append(args, "github.com/hopproxy/hop/cmd/hops", "github.com/hopproxy/hop/cmd/hopc")
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("building hops and hopc: %w", err)
	}
	return dir, nil
}

// Main is a TestMain body for the packages that run the binaries: it
// builds them, sets *dir to their directory while m runs, and removes it
// after. It returns the exit code.
func Main(m interface{ Run() int }, dir *string) int {
	d, err := Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(d)
	*dir = d
	return m.Run()
}
