package backoff

import (
	"context"
	"testing"
	"time"
)

func TestGrowsCapsAndResets(t *testing.T) {
	mid := func() float64 { return 0.5 } // no jitter
	b := Backoff{Min: time.Second, Max: 10 * time.Second, Rand: mid}
	want := []time.Duration{1, 2, 4, 8, 10, 10}
	for i, w := range want {
		if got := b.Next(); got != w*time.Second {
			t.Fatalf("attempt %d: %v, want %v", i, got, w*time.Second)
		}
	}
	b.Reset()
	if got := b.Next(); got != time.Second {
		t.Fatalf("after Reset: %v", got)
	}
}

func TestJitterBounds(t *testing.T) {
	for _, r := range []float64{0, 0.999} {
		b := Backoff{Min: time.Second, Max: 8 * time.Second, Rand: func() float64 { return r }}
		for range 6 {
			d := b.Next()
			if d < 500*time.Millisecond || d > 8*time.Second {
				t.Fatalf("rand %v: delay %v outside [Min/2, Max]", r, d)
			}
		}
	}
	lo := Backoff{Min: time.Second, Max: time.Minute, Rand: func() float64 { return 0 }}
	hi := Backoff{Min: time.Second, Max: time.Minute, Rand: func() float64 { return 0.999 }}
	lo.Next()
	hi.Next()
	if a, b := lo.Next(), hi.Next(); a >= b || a < 1600*time.Millisecond || b > 2400*time.Millisecond {
		t.Fatalf("second attempt jitter range [%v, %v], want about 2s ± 20%%", a, b)
	}
}

func TestSleepHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep reported a full sleep on a canceled context")
	}
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep did not complete")
	}
}
