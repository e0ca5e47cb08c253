// Package backoff computes reconnect delays: exponential from Min up to
// Max, each with ±20% jitter so that many clients cut off at once do not
// come back in lockstep. Reset starts over; callers reset after the link
// has been up for a while.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is not safe for concurrent use.
type Backoff struct {
	Min, Max time.Duration
	attempt  int
	// Rand returns a float in [0,1); nil uses math/rand/v2.
	Rand func() float64
}

// Next returns the delay before the next attempt and advances.
func (b *Backoff) Next() time.Duration {
	d := b.Min
	for i := 0; i < b.attempt && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	b.attempt++
	r := rand.Float64
	if b.Rand != nil {
		r = b.Rand
	}
	j := time.Duration((r()*0.4 - 0.2) * float64(d))
	return max(min(d+j, b.Max), b.Min/2)
}

// Attempt is the number of Next calls since the last Reset.
func (b *Backoff) Attempt() int { return b.attempt }

// Reset starts over from Min.
func (b *Backoff) Reset() { b.attempt = 0 }

// Sleep waits d or until ctx ends, and reports whether d elapsed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
