package xtcp

import (
	"fmt"
	"log/slog"
	"time"
)

// Defaults of the path keepalive, shared by SessionConfig and
// DatagramConfig.
const (
	// DefaultKeepaliveInterval is well under the 30 s UDP mapping timeout
	// of common NATs (Linux conntrack's unreplied timeout; many home
	// routers use 30–60 s).
	DefaultKeepaliveInterval = 10 * time.Second
	// DefaultKeepaliveTimeout is three intervals.
	DefaultKeepaliveTimeout = 30 * time.Second
	// DefaultSocketBuffer is asked of the kernel for the socket's send and
	// receive buffers (it caps them at net.core.[rw]mem_max).
	DefaultSocketBuffer = 4 << 20
)

// KCPConfig tunes KCP. The zero KCPConfig is not valid: start from
// DefaultKCPConfig, or leave SessionConfig.KCP nil.
type KCPConfig struct {
	// NoDelay turns on KCP's nodelay mode: minimum RTO 30 ms instead of
	// 100 ms, and no RTO doubling on loss.
	NoDelay bool
	// Interval is KCP's internal update period (retransmission checks,
	// batched ACKs). kcp-go's floor is 10 ms. Latency does not depend on
	// it: writes are flushed at once and, with AckNoDelay, so are ACKs.
	Interval time.Duration
	// FastResend retransmits a segment skipped by this many ACKs; 0 turns
	// fast retransmit off.
	FastResend int
	// CongestionControl turns on KCP's congestion window. Off, the send
	// rate is bounded by the windows only.
	CongestionControl bool
	// SendWindow and RecvWindow are in packets.
	SendWindow, RecvWindow int
	// MTU is the size of a KCP packet; a UDP payload is MTU +
	// FrameOverhead (30) bytes.
	MTU int
	// StreamMode merges writes into full packets (byte stream instead of
	// message boundaries).
	StreamMode bool
	// AckNoDelay sends each ACK at once instead of at the next update:
	// sub-millisecond RTT on fast paths at the cost of more ACK packets.
	AckNoDelay bool
}

// DefaultKCPConfig returns the low-latency, high-throughput settings.
func DefaultKCPConfig() KCPConfig {
	return KCPConfig{
		NoDelay:           true,
		Interval:          10 * time.Millisecond,
		FastResend:        2,
		CongestionControl: false,
		SendWindow:        1024,
		RecvWindow:        1024,
		MTU:               1350,
		StreamMode:        true,
		AckNoDelay:        true,
	}
}

// Validate reports settings kcp-go would refuse or clamp silently.
func (c KCPConfig) Validate() error {
	switch {
	case c.Interval < 10*time.Millisecond || c.Interval > 5*time.Second:
		return fmt.Errorf("xtcp: kcp interval %v: want 10ms..5s (kcp-go's range)", c.Interval)
	case c.FastResend < 0:
		return fmt.Errorf("xtcp: kcp fastResend %d: want 0 (off) or more", c.FastResend)
	case c.SendWindow < 32 || c.SendWindow > 65535 || c.RecvWindow < 128 || c.RecvWindow > 65535:
		return fmt.Errorf("xtcp: kcp windows %d/%d: want send 32..65535, receive 128..65535", c.SendWindow, c.RecvWindow)
	case c.MTU < 256 || c.MTU+FrameOverhead > maxKCPPacket:
		return fmt.Errorf("xtcp: kcp mtu %d: want 256..%d", c.MTU, maxKCPPacket-FrameOverhead)
	}
	return nil
}

// maxKCPPacket is kcp-go's receive buffer (its mtuLimit): a whole UDP
// payload must fit in it.
const maxKCPPacket = 1500

// SessionConfig configures an xtcp Session. The zero SessionConfig means
// the defaults.
type SessionConfig struct {
	// KeepaliveInterval between path keepalives. Default 10 s.
	KeepaliveInterval time.Duration
	// KeepaliveTimeout: after this long without an authentic packet from
	// the peer the path is dead (ErrPathDead). It also bounds a KCP stall:
	// a yamux ping unanswered this long while nothing arrives through KCP
	// is ErrPathDead too. Default 30 s; must exceed KeepaliveInterval.
	KeepaliveTimeout time.Duration
	// MaxClockSkew bounds the timestamps of control packets. Default 60 s.
	MaxClockSkew time.Duration
	// KCP tunes KCP; nil means DefaultKCPConfig().
	KCP *KCPConfig
	// MaxStreamWindow is yamux's per-stream receive window in bytes.
	// Default 1 MiB; at least 256 KiB.
	MaxStreamWindow uint32
	// AcceptBacklog bounds streams opened by the peer and not yet
	// accepted. Default 256.
	AcceptBacklog int
	// SocketBuffer is asked for the socket's buffers; default 4 MiB,
	// negative leaves them alone.
	SocketBuffer int
	// Logger gets one line per lifecycle event; nil discards.
	Logger *slog.Logger
}

// Defaults of SessionConfig.
const (
	DefaultMaxStreamWindow = 1 << 20
	DefaultAcceptBacklog   = 256
)

func (c SessionConfig) withDefaults() (SessionConfig, error) {
	pc, err := pathDefaults(c.KeepaliveInterval, c.KeepaliveTimeout, c.MaxClockSkew, c.SocketBuffer, c.Logger)
	if err != nil {
		return c, err
	}
	c.KeepaliveInterval, c.KeepaliveTimeout, c.MaxClockSkew, c.SocketBuffer, c.Logger =
		pc.keepaliveInterval, pc.keepaliveTimeout, pc.maxClockSkew, pc.socketBuffer, pc.logger
	if c.KCP == nil {
		d := DefaultKCPConfig()
		c.KCP = &d
	} else {
		k := *c.KCP // a copy: the caller may reuse theirs
		c.KCP = &k
	}
	if err := c.KCP.Validate(); err != nil {
		return c, err
	}
	if c.MaxStreamWindow == 0 {
		c.MaxStreamWindow = DefaultMaxStreamWindow
	}
	if c.MaxStreamWindow < 256<<10 {
		return c, fmt.Errorf("xtcp: maxStreamWindow %d: want at least 262144", c.MaxStreamWindow)
	}
	if c.AcceptBacklog < 0 {
		return c, fmt.Errorf("xtcp: negative acceptBacklog %d", c.AcceptBacklog)
	}
	if c.AcceptBacklog == 0 {
		c.AcceptBacklog = DefaultAcceptBacklog
	}
	return c, nil
}

func (c SessionConfig) path() pathConfig {
	return pathConfig{
		keepaliveInterval: c.KeepaliveInterval,
		keepaliveTimeout:  c.KeepaliveTimeout,
		maxClockSkew:      c.MaxClockSkew,
		socketBuffer:      c.SocketBuffer,
		logger:            c.Logger,
	}
}

// DatagramConfig configures a DatagramPath. The zero DatagramConfig means
// the defaults.
type DatagramConfig struct {
	// KeepaliveInterval, KeepaliveTimeout and MaxClockSkew are as in
	// SessionConfig, with the same defaults.
	KeepaliveInterval time.Duration
	KeepaliveTimeout  time.Duration
	MaxClockSkew      time.Duration
	// QueueLen bounds received datagrams waiting for Recv; more are
	// dropped (counted in PathStats.Dropped). Default 256.
	QueueLen int
	// SocketBuffer is as in SessionConfig.
	SocketBuffer int
	// Logger gets one line per lifecycle event; nil discards.
	Logger *slog.Logger
}

// DefaultQueueLen is DatagramConfig.QueueLen's default.
const DefaultQueueLen = 256

func (c DatagramConfig) withDefaults() (DatagramConfig, pathConfig, error) {
	pc, err := pathDefaults(c.KeepaliveInterval, c.KeepaliveTimeout, c.MaxClockSkew, c.SocketBuffer, c.Logger)
	if err != nil {
		return c, pc, err
	}
	if c.QueueLen < 0 {
		return c, pc, fmt.Errorf("xtcp: negative queueLen %d", c.QueueLen)
	}
	if c.QueueLen == 0 {
		c.QueueLen = DefaultQueueLen
	}
	return c, pc, nil
}

func pathDefaults(interval, timeout, skew time.Duration, sockBuf int, log *slog.Logger) (pathConfig, error) {
	if interval < 0 || timeout < 0 || skew < 0 {
		return pathConfig{}, fmt.Errorf("xtcp: negative keepaliveInterval %v, keepaliveTimeout %v or maxClockSkew %v", interval, timeout, skew)
	}
	if interval == 0 {
		interval = DefaultKeepaliveInterval
	}
	if timeout == 0 {
		timeout = DefaultKeepaliveTimeout
	}
	if skew == 0 {
		skew = DefaultMaxClockSkew
	}
	if timeout <= interval {
		return pathConfig{}, fmt.Errorf("xtcp: keepaliveTimeout %v must exceed keepaliveInterval %v", timeout, interval)
	}
	if sockBuf == 0 {
		sockBuf = DefaultSocketBuffer
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return pathConfig{keepaliveInterval: interval, keepaliveTimeout: timeout, maxClockSkew: skew, socketBuffer: sockBuf, logger: log}, nil
}
