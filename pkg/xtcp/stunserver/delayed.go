package stunserver

import (
	"net/netip"
	"sync"
	"time"
)

// delayed holds the answers waiting for their RESPOND-AFTER delay, within
// a total cap and a cap per source IP.
type delayed struct {
	max, maxPerIP int // <0: none allowed
	wg            *sync.WaitGroup

	mu     sync.Mutex
	closed bool
	perIP  map[netip.Addr]int
	timers map[*delayedAnswer]struct{}
}

type delayedAnswer struct {
	t  *time.Timer
	ip netip.Addr
}

func newDelayed(max, maxPerIP int, wg *sync.WaitGroup) *delayed {
	if max == 0 {
		max = DefaultMaxDelayed
	}
	if maxPerIP == 0 {
		maxPerIP = DefaultMaxDelayedPerIP
	}
	return &delayed{max: max, maxPerIP: maxPerIP, wg: wg,
		perIP: map[netip.Addr]int{}, timers: map[*delayedAnswer]struct{}{}}
}

// schedule runs send after d, on a goroutine of its own counted in wg,
// unless a cap is reached or the server is closing: then it returns false
// and send is never run.
func (q *delayed) schedule(ip netip.Addr, d time.Duration, send func()) bool {
	ip = ip.Unmap()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.max < 0 || q.maxPerIP < 0 || len(q.timers) >= q.max || q.perIP[ip] >= q.maxPerIP {
		return false
	}
	a := &delayedAnswer{ip: ip}
	q.timers[a] = struct{}{}
	q.perIP[ip]++
	q.wg.Add(1)
	a.t = time.AfterFunc(d, func() {
		defer q.wg.Done()
		q.mu.Lock()
		_, ok := q.timers[a]
		if ok {
			q.forget(a)
		}
		q.mu.Unlock()
		if ok {
			send()
		}
	})
	return true
}

// forget drops a from the books; q.mu is held.
func (q *delayed) forget(a *delayedAnswer) {
	delete(q.timers, a)
	if q.perIP[a.ip]--; q.perIP[a.ip] <= 0 {
		delete(q.perIP, a.ip)
	}
}

// close drops every waiting answer; later schedules fail.
func (q *delayed) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	for a := range q.timers {
		q.forget(a)
		if a.t.Stop() {
			q.wg.Done() // its function will never run
		}
	}
}

func (q *delayed) pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.timers)
}
