package procs

import (
	"runtime"
	"testing"
)

func TestSet(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	t.Setenv("GOMAXPROCS", "")
	before := runtime.GOMAXPROCS(0)
	n, env := Set()
	if env || n != max(1, before/2) || runtime.GOMAXPROCS(0) != n {
		t.Fatalf("Set() = %d, %v with %d before", n, env, before)
	}
	t.Setenv("GOMAXPROCS", "3")
	runtime.GOMAXPROCS(3)
	if n, env := Set(); !env || n != 3 {
		t.Fatalf("with GOMAXPROCS=3: %d, %v", n, env)
	}
}
