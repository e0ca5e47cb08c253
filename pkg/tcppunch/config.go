package tcppunch

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hopproxy/hop/pkg/seal"
	"github.com/hopproxy/hop/pkg/xtcp"
)

// Errors of this package; match them with errors.Is.
var (
	// ErrInvalidConfig matches every error of Config.Validate and
	// CarrierConfig.Validate.
	ErrInvalidConfig = errors.New("tcppunch: invalid config")
	// ErrTimeout: no authenticated TCP connection to the peer by StartAt
	// + Timeout.
	ErrTimeout = errors.New("tcppunch: no direct TCP connection to the peer in time")
	// ErrHandshake: the peer's hello or first record is not hop's TCP
	// punch (another program, or another version).
	ErrHandshake = errors.New("tcppunch: not a hop TCP punch handshake")
	// ErrSession: the peer's hello names another session ID.
	ErrSession = errors.New("tcppunch: peer is in another punch session")
	// ErrRole: the peer claims our own role.
	ErrRole = errors.New("tcppunch: peer has our role")
	// ErrAuth: the peer's proof does not verify: it lacks the attempt key.
	ErrAuth = errors.New("tcppunch: peer failed to prove the attempt key")
	// ErrRecord: an authentic record that no sender writes.
	ErrRecord = errors.New("tcppunch: malformed record")
	// ErrPathDead: the punched connection stopped working (keepalives
	// unanswered, silence, a stalled write or a broken connection).
	ErrPathDead = errors.New("tcppunch: punched TCP path dead")
	// ErrPeerClosed: the peer closed the carrier.
	ErrPeerClosed = errors.New("tcppunch: peer closed the path")
	// ErrClosed: the carrier (or endpoint) was closed here.
	ErrClosed = errors.New("tcppunch: closed")
	// ErrTooLarge: a packet over MaxPacket, or larger than the buffer
	// given to RecvPacket.
	ErrTooLarge = errors.New("tcppunch: packet too large")
	// ErrSTUN: hops' STUN answer over TCP is missing or malformed.
	ErrSTUN = errors.New("tcppunch: no usable STUN answer over TCP")
)

// MaxPacket is the largest packet a Carrier carries.
const MaxPacket = seal.MaxDatagram - 1

// MaxCandidates is how many peer candidates Punch dials at most.
const MaxCandidates = 16

// Defaults of Config and CarrierConfig.
const (
	DefaultTimeout           = 10 * time.Second
	DefaultDialTimeout       = 2 * time.Second // covers the kernel's first SYN retransmission (1 s)
	DefaultRetryInterval     = 100 * time.Millisecond
	DefaultHandshakeTimeout  = 3 * time.Second
	DefaultKeepaliveInterval = 10 * time.Second
	DefaultKeepaliveTimeout  = 30 * time.Second
	DefaultQueue             = 512
)

// CarrierConfig tunes a Carrier. The zero value means the defaults.
type CarrierConfig struct {
	// KeepaliveInterval is the time between two pings. Default 10 s.
	KeepaliveInterval time.Duration
	// KeepaliveTimeout ends the carrier when nothing authentic arrived
	// for so long, or a write stalled for so long. It must exceed
	// KeepaliveInterval. Default 30 s.
	KeepaliveTimeout time.Duration
	// SendQueue and RecvQueue bound the packets queued each way; a packet
	// beyond is dropped. Default 512 each.
	SendQueue, RecvQueue int
	// Logger gets one line per lifecycle event; nil discards.
	Logger *slog.Logger
}

func (c CarrierConfig) withDefaults() CarrierConfig {
	if c.KeepaliveInterval == 0 {
		c.KeepaliveInterval = DefaultKeepaliveInterval
	}
	if c.KeepaliveTimeout == 0 {
		c.KeepaliveTimeout = DefaultKeepaliveTimeout
	}
	if c.SendQueue == 0 {
		c.SendQueue = DefaultQueue
	}
	if c.RecvQueue == 0 {
		c.RecvQueue = DefaultQueue
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate checks c after its defaults are filled in.
func (c CarrierConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.KeepaliveInterval < 0:
		return bad("keepalive interval %v is negative", c.KeepaliveInterval)
	case c.KeepaliveTimeout <= c.KeepaliveInterval:
		return bad("keepalive timeout %v must exceed the keepalive interval %v", c.KeepaliveTimeout, c.KeepaliveInterval)
	case c.SendQueue < 0 || c.RecvQueue < 0:
		return bad("queue sizes %d and %d must be positive", c.SendQueue, c.RecvQueue)
	}
	return nil
}

// Config is one TCP punch attempt. Key, SessionID, Role and Remote are
// required; zero durations and sizes mean the defaults.
type Config struct {
	// Key is the attempt key (xtcp.KeySize bytes) both peers agreed on,
	// as for xtcp.PunchConfig.Key. Only keys derived from it with this
	// package's own HKDF labels are used.
	Key []byte
	// SessionID identifies the attempt; the server makes it.
	SessionID xtcp.SessionID
	// Role is ours; the peer must have the other one.
	Role xtcp.Role
	// Remote lists the peer's TCP candidates; at most MaxCandidates.
	Remote []xtcp.Candidate
	// StartAt is when both sides start dialing; zero starts at once.
	StartAt time.Time
	// Timeout bounds the attempt, counted from StartAt (or from the call
	// when StartAt has passed). Default 10 s.
	Timeout time.Duration
	// DialTimeout bounds one connect. Default 2 s, or Timeout if shorter.
	DialTimeout time.Duration
	// RetryInterval is the pause between two connects to one candidate.
	// Default 100 ms.
	RetryInterval time.Duration
	// HandshakeTimeout bounds the authentication of one connection.
	// Default 3 s.
	HandshakeTimeout time.Duration
	// Carrier tunes the carrier Punch returns.
	Carrier CarrierConfig
	// Logger gets one line per lifecycle event; nil discards.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = min(DefaultDialTimeout, c.Timeout)
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = DefaultRetryInterval
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Carrier.Logger == nil {
		c.Carrier.Logger = c.Logger
	}
	c.Carrier = c.Carrier.withDefaults()
	return c
}

// Validate checks c after its defaults are filled in.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case len(c.Key) != xtcp.KeySize:
		return bad("attempt key of %d bytes, want %d", len(c.Key), xtcp.KeySize)
	case c.SessionID.IsZero():
		return bad("zero session ID")
	case c.Role != xtcp.RoleVisitor && c.Role != xtcp.RoleOwner:
		return bad("role %v", c.Role)
	case len(c.Remote) == 0:
		return bad("no remote candidates")
	case len(c.Remote) > MaxCandidates:
		return bad("%d remote candidates, at most %d", len(c.Remote), MaxCandidates)
	case c.Timeout < 0 || c.DialTimeout < 0 || c.RetryInterval < 0 || c.HandshakeTimeout < 0:
		return bad("negative duration")
	case c.DialTimeout > c.Timeout:
		return bad("dial timeout %v exceeds the attempt timeout %v", c.DialTimeout, c.Timeout)
	}
	for _, r := range c.Remote {
		if err := r.Validate(); err != nil {
			return bad("remote candidate: %v", err)
		}
	}
	return c.Carrier.Validate()
}

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
}
