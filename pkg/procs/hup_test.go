//go:build unix

package procs

import (
	"sync"
	"syscall"
	"testing"
	"time"
)

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestHandleCallsFnPerHUP: Handle runs its function once per SIGHUP, the
// one caught before it included, and not after stop.
func TestHandleCallsFnPerHUP(t *testing.T) {
	h := CatchHUP()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	calls := 0
	count := func() int { mu.Lock(); defer mu.Unlock(); return calls }
	stop := h.Handle(func() { mu.Lock(); calls++; mu.Unlock() })
	waitFor(t, func() bool { return count() == 1 })
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return count() == 2 })
	stop()
	stop()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The signal is caught (the test process lives) and stays queued in
	// the channel, never handled.
	waitFor(t, func() bool { return len(h.ch) == 1 })
	if count() != 2 {
		t.Fatalf("%d calls after stop", count())
	}
}
