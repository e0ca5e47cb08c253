// Package heartbeat is hop's app-level heartbeat: each side sends Ping
// messages on the control stream every Interval and answers the peer's
// Pings with Pongs that echo the sender's timestamp, so each side knows the
// round trip time. A side that hears nothing at all from its peer for
// Timeout declares the link dead with a *TimeoutError.
//
// "Nothing at all" counts every byte that arrived on the connection, not
// only Pongs: a Pong stuck behind bulk data on a saturated link is not a
// dead link, and must not trip the check. The heartbeat is separate from the
// mux keepalive (package mux) and reports its own error.
package heartbeat

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hopproxy/hop/pkg/protocol"
)

// ErrTimeout matches every *TimeoutError.
var ErrTimeout = errors.New("heartbeat timeout")

// TimeoutError says how long the peer was silent and what the heartbeat
// last knew of it.
type TimeoutError struct {
	Timeout time.Duration // heartbeat.timeout in force
	Silence time.Duration // time since anything arrived from the peer
	// LastPongAge is the time since the last Pong, or -1 if none arrived.
	LastPongAge time.Duration
	// LastRTT is the round trip of the last Pong, or 0 if none arrived.
	LastRTT time.Duration
}

func (e *TimeoutError) Error() string {
	pong := "no pong received yet"
	if e.LastPongAge >= 0 {
		pong = fmt.Sprintf("last pong %v ago, last RTT %v", e.LastPongAge.Round(time.Millisecond), e.LastRTT.Round(time.Microsecond))
	}
	return fmt.Sprintf("heartbeat timeout: nothing received from the peer for %v (heartbeat.timeout %v); %s",
		e.Silence.Round(time.Millisecond), e.Timeout, pong)
}

// Unwrap makes errors.Is(err, ErrTimeout) true.
func (e *TimeoutError) Unwrap() error { return ErrTimeout }

// Config tunes a Monitor. Interval 0 sends no Pings; Timeout 0 never
// declares the peer dead.
type Config struct {
	Interval time.Duration
	Timeout  time.Duration
}

// Validate checks the combination.
func (c Config) Validate() error {
	if c.Interval < 0 || c.Timeout < 0 {
		return fmt.Errorf("heartbeat interval and timeout must not be negative")
	}
	if c.Interval > 0 && c.Timeout > 0 && c.Interval >= c.Timeout {
		return fmt.Errorf("heartbeat.interval %v must be shorter than heartbeat.timeout %v", c.Interval, c.Timeout)
	}
	return nil
}

// Stats is a snapshot of a Monitor.
type Stats struct {
	PingsSent     uint64
	PongsReceived uint64
	LastRTT       time.Duration
	LastPong      time.Time // zero if none
}

// Monitor sends Pings, answers the peer's, and watches for silence.
type Monitor struct {
	cfg      Config
	send     func(protocol.Message) bool
	lastRead func() time.Time
	epoch    time.Time

	mu        sync.Mutex
	seq       uint64
	stats     Stats
	lastHeard time.Time
	err       error

	// The Monitor runs on two timers, no goroutine of its own (a
	// server holds one Monitor per client): pingT sends the Pings, checkT
	// looks for silence ten times per timeout. gen tells the callbacks of
	// timers that SetConfig replaced to do nothing. All under mu.
	pingT, checkT *time.Timer
	gen           uint64
	ended         bool
	done          chan struct{}
	onTimeout     func(error) // OnTimeout's
}

// OnTimeout has f called with the *TimeoutError when the Monitor times
// out (from a timer's goroutine; at once if it timed out already). A
// caller that only has to close the session then needs no goroutine
// waiting on Done.
func (m *Monitor) OnTimeout(f func(error)) {
	m.mu.Lock()
	m.onTimeout = f
	err := m.err
	m.mu.Unlock()
	if err != nil {
		f(err)
	}
}

// SetConfig changes the interval and timeout of a running Monitor, as
// heartbeat.interval = "auto" does when it learns the path; a Ping goes
// out at the new interval from now. An invalid cfg is refused. On a
// stopped Monitor it does nothing.
func (m *Monitor) SetConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cfg = cfg
	if !m.ended {
		m.arm()
	}
	return nil
}

// Config returns the configuration in force.
func (m *Monitor) Config() Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg
}

// Start runs a Monitor. send must not block (it queues the message or
// reports false). lastRead, if not nil, tells when bytes last arrived from
// the peer on the underlying connection.
func Start(cfg Config, send func(protocol.Message) bool, lastRead func() time.Time) *Monitor {
	now := time.Now()
	m := &Monitor{cfg: cfg, send: send, lastRead: lastRead, epoch: now, lastHeard: now, done: make(chan struct{})}
	m.mu.Lock()
	m.arm()
	m.mu.Unlock()
	if cfg.Interval > 0 {
		m.ping()
	}
	return m
}

// arm (re)starts the timers for m.cfg. Callers hold mu.
func (m *Monitor) arm() {
	m.stopTimers()
	m.gen++
	gen := m.gen
	if m.cfg.Interval > 0 {
		m.pingT = time.AfterFunc(m.cfg.Interval, func() { m.onPing(gen) })
	}
	if m.cfg.Timeout > 0 {
		m.checkT = time.AfterFunc(m.checkEvery(), func() { m.onCheck(gen) })
	}
}

func (m *Monitor) checkEvery() time.Duration { return max(m.cfg.Timeout/10, time.Millisecond) }

func (m *Monitor) stopTimers() {
	for _, t := range []*time.Timer{m.pingT, m.checkT} {
		if t != nil {
			t.Stop()
		}
	}
	m.pingT, m.checkT = nil, nil
}

func (m *Monitor) onPing(gen uint64) {
	m.mu.Lock()
	if m.ended || gen != m.gen {
		m.mu.Unlock()
		return
	}
	m.pingT.Reset(m.cfg.Interval)
	m.mu.Unlock()
	m.ping()
}

func (m *Monitor) onCheck(gen uint64) {
	now := time.Now()
	m.mu.Lock()
	if m.ended || gen != m.gen {
		m.mu.Unlock()
		return
	}
	err := m.checkLocked(now)
	if err == nil {
		m.checkT.Reset(m.checkEvery())
		m.mu.Unlock()
		return
	}
	m.err = err
	m.end()
	f := m.onTimeout
	m.mu.Unlock()
	if f != nil {
		f(err)
	}
}

// end stops the Monitor, once. Callers hold mu.
func (m *Monitor) end() {
	if m.ended {
		return
	}
	m.ended = true
	m.stopTimers()
	close(m.done)
}

func (m *Monitor) ping() {
	m.mu.Lock()
	m.seq++
	p := &protocol.Ping{Seq: m.seq, SentNanos: int64(time.Since(m.epoch))}
	m.mu.Unlock()
	if m.send(p) {
		m.mu.Lock()
		m.stats.PingsSent++
		m.mu.Unlock()
	}
}

// checkLocked returns the timeout error when the peer has been silent
// for the timeout. Callers hold mu.
func (m *Monitor) checkLocked(now time.Time) error {
	heard := m.lastHeard
	if m.lastRead != nil {
		if r := m.lastRead(); r.After(heard) {
			heard = r
		}
	}
	silence := now.Sub(heard)
	if silence < m.cfg.Timeout {
		return nil
	}
	e := &TimeoutError{Timeout: m.cfg.Timeout, Silence: silence, LastPongAge: -1}
	if !m.stats.LastPong.IsZero() {
		e.LastPongAge = now.Sub(m.stats.LastPong)
		e.LastRTT = m.stats.LastRTT
	}
	return e
}

// Handle processes a Ping or Pong from the peer and reports whether msg
// was one. Every other message should still be passed to Heard.
func (m *Monitor) Handle(msg protocol.Message) bool {
	switch msg := msg.(type) {
	case *protocol.Ping:
		m.Heard()
		m.send(&protocol.Pong{Seq: msg.Seq, EchoNanos: msg.SentNanos})
		return true
	case *protocol.Pong:
		now := time.Now()
		m.mu.Lock()
		m.lastHeard = now
		m.stats.PongsReceived++
		m.stats.LastPong = now
		if rtt := time.Duration(int64(now.Sub(m.epoch)) - msg.EchoNanos); msg.EchoNanos >= 0 && rtt >= 0 {
			m.stats.LastRTT = rtt
		}
		m.mu.Unlock()
		return true
	}
	return false
}

// Heard notes that a message arrived from the peer.
func (m *Monitor) Heard() {
	m.mu.Lock()
	m.lastHeard = time.Now()
	m.mu.Unlock()
}

// Done is closed when the Monitor stopped, by Close or by a timeout.
func (m *Monitor) Done() <-chan struct{} { return m.done }

// Err is the *TimeoutError that stopped the Monitor, or nil.
func (m *Monitor) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// Stats returns a snapshot.
func (m *Monitor) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// Close stops the Monitor. Safe to call more than once. A timer callback
// that had already fired when Close ran finds the Monitor ended and does
// nothing.
func (m *Monitor) Close() {
	m.mu.Lock()
	m.end()
	m.mu.Unlock()
}
