package idle

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestStampAndSweep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var s Stamp
		s.Touch()
		if s.Idle(time.Now(), time.Second) {
			t.Fatal("idle right after Touch")
		}
		start := time.Now()
		var found time.Duration
		Sweep(time.Second, nil, func(now time.Time) bool {
			if s.Idle(now, time.Second) {
				found = now.Sub(start)
				return false
			}
			return true
		})
		if found <= time.Second || found > 1250*time.Millisecond {
			t.Fatalf("idle found after %v, want within (1s, 1.25s]", found)
		}
		stop := make(chan struct{})
		close(stop)
		Sweep(time.Second, stop, func(time.Time) bool { t.Fatal("swept after stop"); return true })
	})
}
