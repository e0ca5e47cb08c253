package stunserver

import (
	"net/netip"
	"sync"
	"time"
)

// maxTracked bounds the source IPs the rate limiter remembers. Beyond it,
// new sources share one bucket of the same rate, so a flood from many
// (spoofed) addresses gets no more answers per second than one address.
const maxTracked = 4096

// limiter is a token bucket per source IP: rate answers per second, and a
// burst of rate. An IP whose bucket is full is forgotten when room is
// needed: it would start from a full bucket anyway.
type limiter struct {
	rate float64 // tokens per second; 0 disables the limit

	mu       sync.Mutex
	buckets  map[netip.Addr]*bucket
	overflow bucket // the sources beyond maxTracked
	swept    time.Time
	dropped  uint64
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(perSecond int) *limiter {
	return &limiter{rate: float64(perSecond), buckets: map[netip.Addr]*bucket{}}
}

// take refills b to now and takes a token if there is one.
func (l *limiter) take(b *bucket, now time.Time) bool {
	if b.last.IsZero() {
		b.tokens = l.rate
	} else if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(l.rate, b.tokens+dt*l.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// allow reports whether a request from ip may be answered at now.
func (l *limiter) allow(ip netip.Addr, now time.Time) bool {
	if l.rate <= 0 {
		return true
	}
	ip = ip.Unmap()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[ip]
	if b == nil {
		if len(l.buckets) >= maxTracked && now.Sub(l.swept) >= time.Second {
			l.forgetFull(now) // at most once a second: it walks the map
			l.swept = now
		}
		if len(l.buckets) >= maxTracked {
			ok := l.take(&l.overflow, now)
			if !ok {
				l.dropped++
			}
			return ok
		}
		b = &bucket{}
		l.buckets[ip] = b
	}
	ok := l.take(b, now)
	if !ok {
		l.dropped++
	}
	return ok
}

// forgetFull drops the buckets that have refilled by now.
func (l *limiter) forgetFull(now time.Time) {
	for ip, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.rate {
			delete(l.buckets, ip)
		}
	}
}

func (l *limiter) stats() (tracked int, dropped uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets), l.dropped
}
