package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/hopproxy/hop/pkg/logging"
	"github.com/hopproxy/hop/pkg/protocol"
	"github.com/hopproxy/hop/pkg/transport"
)

// Idle probes serve heartbeat.interval = "auto" (docs/PROTOCOL.md, "Idle
// probes"): a logged-in client opens a side connection, asks for a
// silence, and hops answers once at once and once after the silence; the
// client learns from which silences the answer still arrives how long the
// path keeps an idle flow. A probe holds a connection and a timer and
// nothing else; a session has at most maxProbesPerSession, and they end
// with it.
const maxProbesPerSession = 8

// probeWriteTimeout bounds the writes on a probe connection: the wake-up
// of a path that forgot the flow is never acknowledged.
const probeWriteTimeout = 10 * time.Second

// ErrProbeRefused is why hops turns a probe away (wrapped).
var ErrProbeRefused = errors.New("idle probe refused")

// loginOrProbe reads the header of the first frame after TLS: a probe
// connection is served here (done is true), a login gets a reader that
// replays the header.
func (s *Server) loginOrProbe(ctx context.Context, tc net.Conn, leave func(), log *slog.Logger) (rw io.ReadWriter, done bool) {
	var hdr [protocol.HeaderSize]byte
	if _, err := io.ReadFull(tc, hdr[:]); err != nil {
		log.Debug("connection closed before its first frame", "error", err)
		tc.Close()
		return nil, true
	}
	r := io.MultiReader(bytes.NewReader(hdr[:]), tc)
	if protocol.Type(hdr[1]) != protocol.TypeIdleProbe {
		return struct {
			io.Reader
			io.Writer
		}{r, tc}, false
	}
	s.serveIdleProbe(ctx, tc, r, leave, log)
	return nil, true
}

// serveIdleProbe holds a probe connection silent for the silence its
// IdleProbe asks, then wakes it.
func (s *Server) serveIdleProbe(ctx context.Context, tc net.Conn, r io.Reader, leave func(), log *slog.Logger) {
	defer tc.Close()
	msg, err := protocol.ReadMsgMax(r, 1024)
	var m *protocol.IdleProbe
	if err == nil {
		var ok bool
		if m, ok = msg.(*protocol.IdleProbe); !ok {
			err = fmt.Errorf("%w: not an IdleProbe", protocol.ErrMalformed)
		}
	}
	if err != nil {
		s.logLimit.Log(ctx, log, slog.LevelDebug, logging.Source(tc.RemoteAddr().String()), "idle probe refused", "error", err)
		return
	}
	ss, err := s.admitProbe(m)
	if err != nil {
		protocol.WriteMsg(tc, &protocol.Error{Code: protocol.CodeBadRequest, Message: err.Error()})
		s.logLimit.Log(ctx, log, slog.LevelDebug, logging.Source(tc.RemoteAddr().String()), "idle probe refused", "error", err)
		return
	}
	defer ss.probes.Add(-1)
	leave() // no longer a handshake
	// Silent means silent: the kernel's keepalive would refresh the
	// flow that the probe measures.
	if err := transport.SetKeepAlive(tc, transport.KeepAlive{}); err != nil {
		log.Debug("idle probe: cannot switch TCP keepalive off", "error", err)
	}
	tc.SetDeadline(time.Now().Add(probeWriteTimeout))
	if err := protocol.WriteMsg(tc, &protocol.IdleProbeAck{}); err != nil {
		return
	}
	tc.SetDeadline(time.Time{})
	t := time.NewTimer(m.Silence())
	defer t.Stop()
	select {
	case <-t.C:
	case <-ss.ended:
		return
	case <-ctx.Done():
		return
	}
	tc.SetWriteDeadline(time.Now().Add(probeWriteTimeout))
	protocol.WriteMsg(tc, &protocol.IdleProbeAck{Wake: true})
	// The client closes once it has the wake-up; wait a moment for that,
	// so that hops' close does not race the last record.
	tc.SetReadDeadline(time.Now().Add(probeWriteTimeout))
	io.Copy(io.Discard, io.LimitReader(tc, 1))
}

// admitProbe finds the live session a probe names and counts the probe
// against it.
func (s *Server) admitProbe(m *protocol.IdleProbe) (*session, error) {
	key, _ := hex.DecodeString(m.ProbeKey) // validated
	s.mu.Lock()
	var ss *session
	for _, x := range s.sessions {
		if x.id == m.SessionID {
			ss = x
			break
		}
	}
	s.mu.Unlock()
	if ss == nil || subtle.ConstantTimeCompare(ss.probeKey[:], key) != 1 {
		return nil, fmt.Errorf("%w: no live session %q with that probe key (the session ended?)", ErrProbeRefused, m.SessionID)
	}
	if n := ss.probes.Add(1); n > maxProbesPerSession {
		ss.probes.Add(-1)
		return nil, fmt.Errorf("%w: the session has %d probes open, at most %d", ErrProbeRefused, n-1, maxProbesPerSession)
	}
	return ss, nil
}

// newProbeKey is a session's probe key.
func newProbeKey() (k [protocol.ProbeKeySize]byte) {
	rand.Read(k[:])
	return k
}

// heartbeatUpdate applies the interval an auto client learnt to its
// session, within heartbeat.maxInterval: hops' own heartbeats and
// timeout, its mux keepalive and its TCP keepalive follow. It returns the
// interval accepted.
func (ss *session) heartbeatUpdate(m *protocol.HeartbeatUpdate) time.Duration {
	cfg := ss.srv.cfg
	asked := time.Duration(m.IntervalMs) * time.Millisecond
	iv := min(asked, cfg.Heartbeat.MaxInterval.Duration)
	hb := ss.srv.heartbeatConfig()
	if hb.Interval > 0 {
		hb.Interval = iv
	}
	if hb.Timeout > 0 {
		hb.Timeout = max(hb.Timeout, 3*iv)
	}
	if mon := ss.monitor(); mon != nil {
		if err := mon.SetConfig(hb); err != nil { // not reached: Timeout >= 3×Interval
			ss.log.Warn("cannot apply the client's heartbeat interval", "error", err)
		}
	}
	// Twice the heartbeat: they are the backup while heartbeats flow, and
	// never add packets then.
	ss.ms.SetKeepaliveInterval(2 * iv)
	if ka := ss.srv.keepalive(); ka.Idle > 0 && ss.conn != nil {
		ka.Idle = max(ka.Idle, 2*iv)
		if err := transport.SetKeepAlive(ss.conn, ka); err != nil {
			ss.log.Debug("cannot change the TCP keepalive", "error", err)
		}
	}
	learned := time.Duration(m.LearnedMs) * time.Millisecond
	ss.mu.Lock()
	changed := ss.hbInterval != iv
	ss.hbInterval, ss.hbLearned = iv, learned
	ss.mu.Unlock()
	if changed {
		args := []any{"interval", iv, "asked", asked, "timeout", hb.Timeout}
		if learned > 0 {
			args = append(args, "path_keeps_idle_tcp", learned)
		}
		ss.log.Info("client heartbeat interval set", args...)
	}
	return iv
}
