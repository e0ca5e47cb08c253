package faultrelay

import (
	"time"
)

// SetIdleTimeout makes the relay forget connections idle for d, as a NAT
// with a short established-flow timeout does: a connection on which no
// byte arrived from either side for d is severed (see BlackHole), and
// swallows everything from then on, without a FIN or RST. d 0 (the
// default) keeps idle connections forever. It applies to open
// connections too, counting their idleness from their last byte.
func (r *Relay) SetIdleTimeout(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.idleTimeout = d
	if d > 0 && !r.janitor {
		r.janitor = true
		r.wg.Go(r.forgetIdle)
	}
}

// forgetIdle severs the connections idle longer than the idle timeout,
// checking ten times per timeout.
func (r *Relay) forgetIdle() {
	for {
		r.mu.Lock()
		d := r.idleTimeout
		r.mu.Unlock()
		tick := 10 * time.Millisecond
		if d > 0 {
			tick = max(d/10, time.Millisecond)
		}
		select {
		case <-r.ctx.Done():
			return
		case <-time.After(tick):
		}
		if d <= 0 {
			continue
		}
		now := time.Now().UnixNano()
		for _, c := range r.snapshot() {
			if now-c.lastByte.Load() > int64(d) {
				c.sever()
			}
		}
	}
}
