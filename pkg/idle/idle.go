// Package idle ends what has carried no traffic for a while: the
// per-source flows of hop's datagram proxies and visitors, on both sides.
package idle

import (
	"sync/atomic"
	"time"
)

// Stamp records when something was last active. The zero Stamp has never
// been touched; it is safe for concurrent use.
type Stamp struct{ ns atomic.Int64 }

// Touch marks activity now.
func (s *Stamp) Touch() { s.ns.Store(time.Now().UnixNano()) }

// Idle reports whether nothing touched s for longer than d before now.
func (s *Stamp) Idle(now time.Time, d time.Duration) bool {
	return now.Sub(time.Unix(0, s.ns.Load())) > d
}

// Sweep calls sweep every quarter of timeout (at least every 10 ms), so
// that something idle for timeout is found within 1.25 timeouts, until stop
// is closed or sweep returns false.
func Sweep(timeout time.Duration, stop <-chan struct{}, sweep func(now time.Time) bool) {
	t := time.NewTicker(max(timeout/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			if !sweep(now) {
				return
			}
		}
	}
}
