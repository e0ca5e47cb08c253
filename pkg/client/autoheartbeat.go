package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/hopproxy/hop/pkg/heartbeat"
	"github.com/hopproxy/hop/pkg/idletimeout"
	"github.com/hopproxy/hop/pkg/mux"
	"github.com/hopproxy/hop/pkg/protocol"
	"github.com/hopproxy/hop/pkg/transport"
)

// heartbeat.interval = "auto": hopc learns how long the path to hops keeps
// an idle TCP flow, with idle probes on side connections (package
// idletimeout searches, probeIdle runs one probe), and tells hops the
// interval it picked (HeartbeatUpdate). The heartbeat, the mux keepalive
// and the TCP keepalive of the control connection follow it on both
// sides. What is learnt outlives sessions; a session lost to silence (a
// NAT that got shorter) starts the learning over.
type autoHB struct {
	c *Client

	mu       sync.Mutex
	runner   *idletimeout.Runner // set by run
	res      idletimeout.Result
	said     [2]time.Duration // the learnt (survived, interval) last logged
	accepted time.Duration    // the interval hops last accepted; 0 before any answered
}

// ErrNoSession: an idle probe needs a logged-in session.
var ErrNoSession = errors.New("no session to the server")

// newAutoHB prepares "auto" for c; nil when the interval is fixed.
func newAutoHB(c *Client) *autoHB {
	hb := c.cfg.Heartbeat
	if !hb.Interval.Auto {
		return nil
	}
	a := &autoHB{c: c}
	a.res = idletimeout.NewLearner(a.config()).Result() // the start interval, until Run
	return a
}

// config is the learner's configuration: hopc's bounds, and what a test
// set with Client.idleTuning.
func (a *autoHB) config() idletimeout.Config {
	hb := a.c.cfg.Heartbeat
	cfg := idletimeout.Config{Min: hb.MinInterval.Duration, Max: hb.MaxInterval.Duration}
	if a.c.idleTuning != nil {
		a.c.idleTuning(&cfg)
	}
	return cfg
}

// run learns until ctx ends.
func (a *autoHB) run(ctx context.Context) {
	r := idletimeout.NewRunner(a.config(), a.c.probeIdle, a.changed)
	a.mu.Lock()
	a.runner = r
	a.res = r.Result()
	a.mu.Unlock()
	r.Run(ctx)
}

// interval is the heartbeat interval to use now.
func (a *autoHB) interval() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.res.Interval
}

// changed is the Runner's onChange: log what was learnt once per change,
// and ask hops for the new interval.
func (a *autoHB) changed(r idletimeout.Result) {
	a.mu.Lock()
	a.res = r
	say := r.Converged && a.said != [2]time.Duration{r.Survived, r.Interval}
	if say {
		a.said = [2]time.Duration{r.Survived, r.Interval}
	}
	a.mu.Unlock()
	if say {
		msg := fmt.Sprintf("heartbeat interval learned: path forgets idle TCP after ~%v; using %v", (r.Failed).Round(time.Second), r.Interval)
		if r.Failed == 0 {
			msg = fmt.Sprintf("heartbeat interval learned: path keeps idle TCP at least %v; using %v", r.Survived.Round(time.Second), r.Interval)
		}
		a.c.log.Info(msg, "survived", r.Survived, "failed", r.Failed, "probes", r.Probes)
	}
	for _, l := range a.c.lives() { // every node follows
		a.ask(l)
	}
}

// ask sends hops the interval of now for session l.
func (a *autoHB) ask(l *live) {
	a.mu.Lock()
	r := a.res
	a.mu.Unlock()
	l.ch.TrySend(&protocol.HeartbeatUpdate{IntervalMs: r.Interval.Milliseconds(), LearnedMs: r.Survived.Milliseconds()})
}

// accept applies the interval hops accepted to session l: its heartbeat
// (timeout at least 3× the interval), its mux keepalive and the TCP
// keepalive of its connection, both at twice the interval, so that they
// add no packets while heartbeats flow.
func (a *autoHB) accept(l *live, m *protocol.HeartbeatUpdate) {
	c := a.c
	iv := time.Duration(m.IntervalMs) * time.Millisecond
	hb := heartbeat.Config{Interval: iv, Timeout: c.cfg.Heartbeat.Timeout.Duration}
	if hb.Timeout > 0 {
		hb.Timeout = max(hb.Timeout, 3*iv)
	}
	if err := l.hb.SetConfig(hb); err != nil {
		c.log.Warn("cannot apply the heartbeat interval hops accepted", "interval", iv, "error", err)
		return
	}
	l.ms.SetKeepaliveInterval(2 * iv)
	if ka := c.cfg.Transport.TCPKeepalive; ka.Idle.Duration > 0 && l.conn != nil {
		err := transport.SetKeepAlive(l.conn, transport.KeepAlive{Idle: max(ka.Idle.Duration, 2*iv), Interval: ka.Interval.Duration, Count: ka.Count})
		if err != nil {
			c.log.Debug("cannot change the TCP keepalive", "error", err)
		}
	}
	a.mu.Lock()
	changed := a.accepted != iv
	a.accepted = iv
	a.mu.Unlock()
	if changed {
		c.log.Debug("heartbeat interval in force", "interval", iv, "timeout", hb.Timeout, "mux_keepalive", 2*iv)
	}
}

// sessionEnded notes the end of a session: its accepted interval goes, and
// a session lost to silence starts the learning over.
func (a *autoHB) sessionEnded(cause error) {
	a.mu.Lock()
	a.accepted = 0
	a.mu.Unlock()
	a.mu.Lock()
	r := a.runner
	a.mu.Unlock()
	if lostToSilence(cause) && r != nil {
		a.c.log.Info("session lost to silence: learning the path's idle timeout again", "cause", cause)
		r.Relearn()
	}
}

// lostToSilence reports whether a session ended as a path that forgot
// the flow ends it: a heartbeat or mux keepalive timeout, a reset, or the
// kernel's keepalive giving up.
func lostToSilence(err error) bool {
	return errors.Is(err, heartbeat.ErrTimeout) || errors.Is(err, mux.ErrKeepaliveTimeout) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ETIMEDOUT)
}

// AutoHeartbeat is what "auto" knows, for Status.
type AutoHeartbeat struct {
	Interval  time.Duration // in use now (hops' accepted one while logged in)
	Survived  time.Duration // longest idle silence seen to survive; 0 if none yet
	Failed    time.Duration // shortest confirmed too long; 0 if none
	Converged bool
	Probes    int
}

func (a *autoHB) status() AutoHeartbeat {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := AutoHeartbeat{Interval: a.res.Interval, Survived: a.res.Survived, Failed: a.res.Failed, Converged: a.res.Converged, Probes: a.res.Probes}
	if a.accepted > 0 {
		s.Interval = a.accepted
	}
	return s
}

// probeGrace is how long past the silence a probe waits for its wake-up:
// 3 s (tests shorten it with Client.probeGraceBase) and a twentieth of
// the silence, for the timers of both ends.
func (c *Client) probeGrace(silence time.Duration) time.Duration {
	base := 3 * time.Second
	if c.probeGraceBase > 0 {
		base = c.probeGraceBase
	}
	return base + silence/20
}

// probeIdle runs one idle probe (an idletimeout.Prober): a side
// connection to hops, silent for silence, then hops' wake-up. No session,
// no connection or a refusal is an error (nothing learnt); a wake-up that
// never comes, or a reset, means the path forgot the flow.
func (c *Client) probeIdle(ctx context.Context, silence time.Duration) (bool, error) {
	l := c.peekLive()
	if l == nil || l.probeKey == "" {
		return false, ErrNoSession
	}
	if l.node == nil {
		return false, ErrNoSession
	}
	// The path to that node is the one measured; silent means no TCP
	// keepalive.
	raw, tc, err := c.connect(ctx, l.node, transport.KeepAlive{})
	if err != nil {
		return false, err
	}
	defer raw.Close()
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	if err := protocol.WriteMsg(tc, &protocol.IdleProbe{SessionID: l.sessionID, ProbeKey: l.probeKey, SilenceMs: silence.Milliseconds()}); err != nil {
		return false, err
	}
	msg, err := protocol.ReadMsgMax(tc, 4096)
	if err != nil {
		return false, fmt.Errorf("idle probe not held: %w", err)
	}
	switch m := msg.(type) {
	case *protocol.IdleProbeAck:
	case *protocol.Error:
		return false, fmt.Errorf("idle probe refused: %s", m.Message)
	default:
		return false, fmt.Errorf("%w: %v on an idle probe", protocol.ErrMalformed, msg.Type())
	}
	raw.SetDeadline(time.Now().Add(silence + c.probeGrace(silence)))
	msg, err = protocol.ReadMsgMax(tc, 4096)
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err == nil {
		if m, ok := msg.(*protocol.IdleProbeAck); ok && m.Wake {
			return true, nil
		}
		return false, fmt.Errorf("%w: %v instead of the wake-up", protocol.ErrMalformed, msg.Type())
	}
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, syscall.ECONNRESET):
		return false, nil // the path forgot the flow
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return false, fmt.Errorf("hops closed the probe (its session ended?): %w", err)
	}
	return false, err
}
