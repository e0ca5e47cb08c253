package protocol

import (
	"fmt"
	"net/netip"
)

// Message types of secret proxies, visitors and P2P. Values are part of
// the wire format: never renumber.
const (
	TypeP2POffer  Type = 19 // visitor → server → owner (control stream)
	TypeP2PAnswer Type = 20 // owner → server → visitor (control stream)
	TypeP2PGo     Type = 21 // server → owner: start punching after a delay
	TypeP2PResult Type = 22 // either client → server: outcome of an attempt
	TypeVisit     Type = 49 // first frame of a visitor's relay stream to the server
	TypeVisitAuth Type = 50 // visitor → owner, end to end through the relay
	TypeVisitOK   Type = 51 // owner → visitor: authenticated, data follows
)

func init() {
	for t, n := range map[Type]string{TypeP2POffer: "P2POffer", TypeP2PAnswer: "P2PAnswer", TypeP2PGo: "P2PGo",
		TypeP2PResult: "P2PResult", TypeVisit: "Visit", TypeVisitAuth: "VisitAuth", TypeVisitOK: "VisitOK"} {
		typeNames[t] = n
	}
}

// Secret proxy types (no public port; reached through visitors).
const (
	ProxySTCP = "stcp"
	ProxySUDP = "sudp"
	ProxyXTCP = "xtcp"
	ProxyXUDP = "xudp"
)

// Limits of P2P messages.
const (
	MaxCandidates = 32
	MaxAllowUsers = 64
)

// Candidate is an address at which a client may be reachable for a punch.
type Candidate struct {
	Kind string `json:"kind"` // host, srflx, predicted or prflx
	Addr string `json:"addr"` // ip:port
}

// P2POffer asks for a direct path to a secret proxy. The visitor sends it
// with its candidates; the server fills in SessionID, Visitor and
// VisitorUser and forwards it to the proxy's owner.
type P2POffer struct {
	ID        string `json:"id"` // the visitor's attempt ID
	Proxy     string `json:"proxy"`
	ProxyType string `json:"type"` // xtcp or xudp
	// ServerUser is the user of the proxy's owner, set by the visitor
	// (its serverUser); "" = the visitor's own user.
	ServerUser string `json:"serverUser,omitempty"`
	// Visitor (client ID) and VisitorUser (its authenticated user) are set
	// by the server from the visitor's session.
	Visitor     string      `json:"visitor,omitempty"`
	VisitorUser string      `json:"visitorUser,omitempty"`
	SessionID   string      `json:"sessionID,omitempty"` // 32 hex digits, keys the probes
	Candidates  []Candidate `json:"candidates"`
	NAT         string      `json:"nat"` // the visitor's NAT behaviour, e.g. "EIM/APDF"
}

// P2PAnswer carries the owner's candidates back (or why there is no P2P).
// The server adds DelayMs: when the visitor starts punching.
type P2PAnswer struct {
	ID         string      `json:"id"`
	SessionID  string      `json:"sessionID,omitempty"`
	Candidates []Candidate `json:"candidates,omitempty"`
	NAT        string      `json:"nat,omitempty"`
	DelayMs    int64       `json:"delayMs,omitempty"`
	Code       string      `json:"code,omitempty"`
	Error      string      `json:"error,omitempty"`
}

// P2PGo tells the owner when to start punching.
type P2PGo struct {
	SessionID string `json:"sessionID"`
	DelayMs   int64  `json:"delayMs"`
}

// P2PResult reports an attempt's outcome for the server's tally.
type P2PResult struct {
	SessionID string `json:"sessionID"`
	Role      string `json:"role"`    // visitor or owner
	Outcome   string `json:"outcome"` // lan, direct or failed
	ElapsedMs int64  `json:"elapsedMs"`
	Packets   int    `json:"packets"`
	Error     string `json:"error,omitempty"`
	// NAT is the sender's NAT class as it knows it by now (it may have
	// learnt its filtering since the offer); empty keeps the offer's.
	NAT string `json:"nat,omitempty"`
}

// Visit opens a relayed connection to a secret proxy: the first frame a
// visitor writes on a stream it opens to the server.
type Visit struct {
	Proxy     string `json:"proxy"`
	ProxyType string `json:"type"`
	// ServerUser is the user of the proxy's owner (the visitor's
	// serverUser); "" = the visitor's own user.
	ServerUser string `json:"serverUser,omitempty"`
}

// VisitAuth proves, end to end to the owner, that the visitor knows the
// proxy's secretKey: MAC = HMAC-SHA256(secretKey, proxy|visitor|unixMs|nonce).
type VisitAuth struct {
	Visitor string `json:"visitor"`
	UnixMs  int64  `json:"unixMs"`
	Nonce   []byte `json:"nonce"`
	MAC     []byte `json:"mac"`
}

// VisitOK tells the visitor the owner accepted it; data follows.
type VisitOK struct{}

func (*P2POffer) Type() Type  { return TypeP2POffer }
func (*P2PAnswer) Type() Type { return TypeP2PAnswer }
func (*P2PGo) Type() Type     { return TypeP2PGo }
func (*P2PResult) Type() Type { return TypeP2PResult }
func (*Visit) Type() Type     { return TypeVisit }
func (*VisitAuth) Type() Type { return TypeVisitAuth }
func (*VisitOK) Type() Type   { return TypeVisitOK }

var candidateKinds = map[string]bool{"host": true, "srflx": true, "predicted": true, "prflx": true}

func checkCandidates(cs []Candidate) error {
	if len(cs) > MaxCandidates {
		return fmt.Errorf("%d candidates, at most %d", len(cs), MaxCandidates)
	}
	for _, c := range cs {
		if !candidateKinds[c.Kind] {
			return fmt.Errorf("candidate kind %q", c.Kind)
		}
		if _, err := netip.ParseAddrPort(c.Addr); err != nil {
			return fmt.Errorf("candidate address %q: %v", c.Addr, err)
		}
	}
	return nil
}

func checkID(what, s string) error {
	if len(s) == 0 || len(s) > MaxNameLen {
		return fmt.Errorf("%s must be 1 to %d bytes", what, MaxNameLen)
	}
	return checkName(what, s)
}

func checkSession(s string, required bool) error {
	if s == "" && !required {
		return nil
	}
	if len(s) != 32 {
		return fmt.Errorf("sessionID must be 32 hex digits")
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return fmt.Errorf("sessionID must be 32 lowercase hex digits")
		}
	}
	return nil
}

func checkP2PType(t string) error {
	if t != ProxyXTCP && t != ProxyXUDP {
		return fmt.Errorf("P2P type %q is not xtcp or xudp", t)
	}
	return nil
}

func checkNAT(s string) error {
	if len(s) > 32 {
		return fmt.Errorf("NAT description too long")
	}
	return nil
}

func (m *P2POffer) validate() error {
	if err := checkID("offer ID", m.ID); err != nil {
		return err
	}
	if err := checkName("proxy name", m.Proxy); err != nil {
		return err
	}
	if err := checkP2PType(m.ProxyType); err != nil {
		return err
	}
	if m.Visitor != "" {
		if err := checkName("visitor", m.Visitor); err != nil {
			return err
		}
	}
	if err := checkUser("serverUser", m.ServerUser); err != nil {
		return err
	}
	if err := checkUser("visitorUser", m.VisitorUser); err != nil {
		return err
	}
	if err := checkSession(m.SessionID, false); err != nil {
		return err
	}
	if err := checkNAT(m.NAT); err != nil {
		return err
	}
	return checkCandidates(m.Candidates)
}

func (m *P2PAnswer) validate() error {
	if err := checkID("offer ID", m.ID); err != nil {
		return err
	}
	if err := checkSession(m.SessionID, false); err != nil {
		return err
	}
	if m.DelayMs < 0 || m.DelayMs > 10_000 {
		return fmt.Errorf("delay %d ms out of range 0-10000", m.DelayMs)
	}
	if err := checkNAT(m.NAT); err != nil {
		return err
	}
	return checkCandidates(m.Candidates)
}

func (m *P2PGo) validate() error {
	if m.DelayMs < 0 || m.DelayMs > 10_000 {
		return fmt.Errorf("delay %d ms out of range 0-10000", m.DelayMs)
	}
	return checkSession(m.SessionID, true)
}

func (m *P2PResult) validate() error {
	if err := checkSession(m.SessionID, true); err != nil {
		return err
	}
	if m.Role != "visitor" && m.Role != "owner" {
		return fmt.Errorf("role %q", m.Role)
	}
	switch m.Outcome {
	case "lan", "direct", "failed":
	default:
		return fmt.Errorf("outcome %q", m.Outcome)
	}
	if err := checkNAT(m.NAT); err != nil {
		return err
	}
	if m.ElapsedMs < 0 || m.Packets < 0 || len(m.Error) > 512 {
		return fmt.Errorf("result fields out of range")
	}
	return nil
}

func (m *Visit) validate() error {
	if err := checkName("proxy name", m.Proxy); err != nil {
		return err
	}
	if err := checkUser("serverUser", m.ServerUser); err != nil {
		return err
	}
	switch m.ProxyType {
	case ProxySTCP, ProxySUDP, ProxyXTCP, ProxyXUDP:
		return nil
	}
	return fmt.Errorf("visit type %q is not a secret proxy type", m.ProxyType)
}

func (m *VisitAuth) validate() error {
	if err := checkName("visitor", m.Visitor); err != nil {
		return err
	}
	if err := checkLen("nonce", m.Nonce, NonceSize); err != nil {
		return err
	}
	return checkLen("mac", m.MAC, ProofSize)
}

func (m *VisitOK) validate() error { return nil }
