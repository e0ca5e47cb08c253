package logging

import (
	"container/list"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// Defaults of Limiter.
const (
	DefaultLimitInterval = 10 * time.Second
	DefaultLimitKeys     = 4096
)

// Limiter keeps what a remote peer can make hops or hopc log to a few
// lines: of the lines with the same message from the same source it lets
// the first through, counts the others for Interval and then logs one
// summary, "MSG (N more like this from SOURCE in the last 10s)", with the
// attributes of the last one. A source that keeps going gets one summary
// per Interval; one that stops gets its line again after a quiet Interval.
//
// It remembers at most MaxKeys (message, source) pairs, dropping the least
// recently seen (and logging its pending summary) to make room, so a flood
// from many sources costs bounded memory.
//
// The zero Limiter is ready to use; it must not be copied after first use.
type Limiter struct {
	// Interval is the window of a summary; zero means
	// DefaultLimitInterval.
	Interval time.Duration
	// MaxKeys bounds the pairs remembered; zero means DefaultLimitKeys.
	MaxKeys int

	mu      sync.Mutex
	entries map[limitKey]*list.Element // of *limitEntry
	lru     list.List                  // most recently seen first
}

type limitKey struct{ msg, source string }

type limitEntry struct {
	key   limitKey
	since time.Time   // start of the current window
	more  int         // lines held back in it
	timer *time.Timer // pending summary, nil when none
	gen   uint64      // counts timers set, to tell a stale one
	// the last held-back line, which the summary repeats
	log   *slog.Logger
	level slog.Level
	args  []any
}

// summary is a held-back count to log.
type summary struct {
	e     limitEntry
	every time.Duration
}

func (s summary) emit() {
	msg := fmt.Sprintf("%s (%d more like this from %s in the last %v)", s.e.key.msg, s.e.more, s.e.key.source, s.every)
	s.e.log.Log(context.Background(), s.e.level, msg, s.e.args...)
}

func (l *Limiter) interval() time.Duration {
	if l.Interval > 0 {
		return l.Interval
	}
	return DefaultLimitInterval
}

// Log logs msg with args at level on log, or counts it towards the next
// summary of (msg, source). A line log would not print is ignored.
// source names the peer: Source turns a network address into one.
func (l *Limiter) Log(ctx context.Context, log *slog.Logger, level slog.Level, source, msg string, args ...any) {
	if !log.Enabled(ctx, level) {
		return
	}
	now := time.Now()
	every := l.interval()
	l.mu.Lock()
	if l.entries == nil {
		l.entries = map[limitKey]*list.Element{}
	}
	k := limitKey{msg, source}
	var evicted []summary
	el := l.entries[k]
	if el == nil {
		evicted = l.makeRoom()
		l.entries[k] = l.lru.PushFront(&limitEntry{key: k, since: now})
		l.mu.Unlock()
		for _, s := range evicted {
			s.emit()
		}
		log.Log(ctx, level, msg, args...)
		return
	}
	l.lru.MoveToFront(el)
	e := el.Value.(*limitEntry)
	if e.timer == nil && now.Sub(e.since) >= every {
		e.since = now // a quiet window: the line is news again
		l.mu.Unlock()
		log.Log(ctx, level, msg, args...)
		return
	}
	e.more++
	e.log, e.level, e.args = log, level, args
	if e.timer == nil {
		e.gen++
		gen := e.gen
		e.timer = time.AfterFunc(e.since.Add(every).Sub(now), func() { l.fire(e, gen) })
	}
	l.mu.Unlock()
}

// fire logs the summary of e's window, unless Flush or an eviction took
// it since timer number gen was set (an entry evicted while its timer
// fired is still summarised here).
func (l *Limiter) fire(e *limitEntry, gen uint64) {
	l.mu.Lock()
	if e.timer == nil || e.gen != gen {
		l.mu.Unlock()
		return
	}
	s := l.take(e)
	l.mu.Unlock()
	s.emit()
}

// take detaches the entry's pending summary and starts a new window.
// l.mu is held.
func (l *Limiter) take(e *limitEntry) summary {
	s := summary{e: *e, every: l.interval()}
	e.since, e.more, e.timer, e.log, e.args = time.Now(), 0, nil, nil, nil
	return s
}

// makeRoom drops the least recently seen entries down to MaxKeys-1 and
// returns their pending summaries. l.mu is held.
func (l *Limiter) makeRoom() []summary {
	maxKeys := l.MaxKeys
	if maxKeys <= 0 {
		maxKeys = DefaultLimitKeys
	}
	var out []summary
	for len(l.entries) >= maxKeys {
		el := l.lru.Back()
		e := el.Value.(*limitEntry)
		l.lru.Remove(el)
		delete(l.entries, e.key)
		if e.timer != nil && e.timer.Stop() && e.more > 0 {
			out = append(out, l.take(e))
		}
	}
	return out
}

// Flush logs every pending summary now, for a clean shutdown.
func (l *Limiter) Flush() {
	l.mu.Lock()
	var out []summary
	for el := l.lru.Front(); el != nil; el = el.Next() {
		e := el.Value.(*limitEntry)
		if e.timer != nil && e.timer.Stop() && e.more > 0 {
			out = append(out, l.take(e))
		}
	}
	l.mu.Unlock()
	for _, s := range out {
		s.emit()
	}
}

// Len is the number of (message, source) pairs remembered.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// Source names the peer at a network address for a Limiter: the IP
// without the port (every connection has a new one), and for IPv6 its /64,
// which one host or network usually holds whole. What is not an address
// is returned as it is.
func Source(addr string) string {
	var ip netip.Addr
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		ip = ap.Addr()
	} else if a, err := netip.ParseAddr(addr); err == nil {
		ip = a
	} else {
		return addr
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return ip.String()
	}
	p, _ := ip.Prefix(64)
	return p.String()
}
