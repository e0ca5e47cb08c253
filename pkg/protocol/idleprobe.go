package protocol

import (
	"encoding/hex"
	"fmt"
	"time"
)

// Message types of heartbeat.interval = "auto": a client learns how long
// the path to the server keeps an idle TCP flow with probe connections,
// and tells the server the heartbeat interval it picked. Values are part
// of the wire format: never renumber.
const (
	// TypeIdleProbe is the first frame, after TLS, of a probe connection
	// (instead of a ClientHello): client → server.
	TypeIdleProbe Type = 34
	// TypeIdleProbeAck is the server's answer on a probe connection: one
	// at once (Wake false: held), one after the silence (Wake true).
	TypeIdleProbeAck Type = 35
	// TypeHeartbeatUpdate, client → server on the control stream, asks
	// for a heartbeat interval; the server answers with the same type and
	// the interval it accepted.
	TypeHeartbeatUpdate Type = 36
)

// Bounds of the probes a server holds.
const (
	// MaxProbeSilence is the longest silence a probe may ask for.
	MaxProbeSilence = 10 * time.Minute
	// MinProbeSilence is the shortest.
	MinProbeSilence = 100 * time.Millisecond
	// ProbeKeySize is the size of Welcome.ProbeKey.
	ProbeKeySize = 16
)

func init() {
	for t, n := range map[Type]string{TypeIdleProbe: "IdleProbe", TypeIdleProbeAck: "IdleProbeAck", TypeHeartbeatUpdate: "HeartbeatUpdate"} {
		typeNames[t] = n
	}
}

// IdleProbe asks the server to hold this connection silent for SilenceMs
// and then send an IdleProbeAck with Wake set. SessionID and ProbeKey
// (hex) are those of the client's live session (Welcome), so only a
// logged-in client can have the server hold connections.
type IdleProbe struct {
	SessionID string `json:"sessionID"`
	ProbeKey  string `json:"probeKey"`
	SilenceMs int64  `json:"silenceMs"`
}

// IdleProbeAck answers an IdleProbe: Wake false at once, Wake true after
// the silence.
type IdleProbeAck struct {
	Wake bool `json:"wake,omitempty"`
}

// HeartbeatUpdate carries a heartbeat interval: the one the client asks
// for (client → server) or the one the server accepted (server → client,
// at most its heartbeat.maxInterval). LearnedMs, client → server, is the
// longest idle silence the client's probes saw survive (0: none yet), for
// the server's view of the client.
type HeartbeatUpdate struct {
	IntervalMs int64 `json:"intervalMs"`
	LearnedMs  int64 `json:"learnedMs,omitempty"`
}

func (*IdleProbe) Type() Type       { return TypeIdleProbe }
func (*IdleProbeAck) Type() Type    { return TypeIdleProbeAck }
func (*HeartbeatUpdate) Type() Type { return TypeHeartbeatUpdate }

// Silence is the silence asked for.
func (m *IdleProbe) Silence() time.Duration { return time.Duration(m.SilenceMs) * time.Millisecond }

func (m *IdleProbe) validate() error {
	if len(m.SessionID) == 0 || len(m.SessionID) > MaxNameLen {
		return fmt.Errorf("session ID of %d bytes", len(m.SessionID))
	}
	if k, err := hex.DecodeString(m.ProbeKey); err != nil || len(k) != ProbeKeySize {
		return fmt.Errorf("probe key is not %d bytes of hex", ProbeKeySize)
	}
	if s := m.Silence(); s < MinProbeSilence || s > MaxProbeSilence {
		return fmt.Errorf("silence of %dms; it must be from %v to %v", m.SilenceMs, MinProbeSilence, MaxProbeSilence)
	}
	return nil
}

func (m *IdleProbeAck) validate() error { return nil }

func (m *HeartbeatUpdate) validate() error {
	if m.IntervalMs <= 0 || m.IntervalMs > int64(time.Hour/time.Millisecond) {
		return fmt.Errorf("heartbeat interval of %dms; it must be from 1ms to 1h", m.IntervalMs)
	}
	if m.LearnedMs < 0 {
		return fmt.Errorf("negative learned silence")
	}
	return nil
}
