package protocol

import (
	"encoding/json"
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
	TypeP2PAuth   Type = 23 // either client → server → the other: PAKE share, key confirmation, sealed candidates
	TypeVisit     Type = 49 // first frame of a visitor's relay stream to the server
	// 50 (VisitAuth) and 51 (VisitOK) were the HMAC visit proof of v1,
	// which let whoever saw it test guesses of the secret offline. They are
	// retired: never reuse the numbers. The visit handshake is in visit.go.
)

func init() {
	for t, n := range map[Type]string{TypeP2POffer: "P2POffer", TypeP2PAnswer: "P2PAnswer", TypeP2PGo: "P2PGo",
		TypeP2PResult: "P2PResult", TypeP2PAuth: "P2PAuth", TypeVisit: "Visit"} {
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
	Kind string `json:"kind"` // host, srflx, predicted, prflx or mapped
	Addr string `json:"addr"` // ip:port
}

// MaxSealedInfo bounds a sealed P2PInfo. The key exchange's shares and
// tags have ShareSize and TagSize bytes.
const MaxSealedInfo = 4096

// P2POffer asks for a direct path to a secret proxy. The visitor sends it
// with its PAKE share and no addresses; the server fills in SessionID,
// Visitor and VisitorUser and forwards it to the proxy's owner. NAT is in
// clear only for the server's tally: no punching decision is made from it.
type P2POffer struct {
	ID        string `json:"id"` // the visitor's attempt ID
	Proxy     string `json:"proxy"`
	ProxyType string `json:"type"` // xtcp or xudp
	// ServerUser is the user of the proxy's owner, set by the visitor
	// (its serverUser); "" = the visitor's own user.
	ServerUser string `json:"serverUser,omitempty"`
	// Visitor (client ID) and VisitorUser (its authenticated user) are set
	// by the server from the visitor's session.
	Visitor     string `json:"visitor,omitempty"`
	VisitorUser string `json:"visitorUser,omitempty"`
	SessionID   string `json:"sessionID,omitempty"` // 32 hex digits, names the attempt
	NAT         string `json:"nat"`                 // the visitor's NAT behaviour, e.g. "EIM/APDF" (tally only)
	Share       []byte `json:"share"`               // the visitor's CPace share
}

// P2PAuth carries the rest of the key exchange between the two clients of
// an attempt; the server forwards it to the other party of SessionID (and
// sets ID, the visitor's attempt ID, toward the visitor). The owner sends
// Share and Tag (its key confirmation); the visitor answers with Tag and
// Sealed: its P2PInfo sealed under the exchange's key.
type P2PAuth struct {
	ID        string `json:"id,omitempty"`
	SessionID string `json:"sessionID"`
	Share     []byte `json:"share,omitempty"`
	Tag       []byte `json:"tag"`
	Sealed    []byte `json:"sealed,omitempty"`
}

// P2PAnswer carries the owner's sealed P2PInfo back (or why there is no
// P2P). The server adds DelayMs: when the visitor starts punching. NAT is
// the owner's class in clear, for the server's tally only.
type P2PAnswer struct {
	ID        string `json:"id"`
	SessionID string `json:"sessionID,omitempty"`
	NAT       string `json:"nat,omitempty"`
	Sealed    []byte `json:"sealed,omitempty"`
	DelayMs   int64  `json:"delayMs,omitempty"`
	Code      string `json:"code,omitempty"`
	Error     string `json:"error,omitempty"`
}

// P2PInfo is what each client reveals to the other once the key exchange
// has proved that both know the secret: its candidates and NAT class. It
// travels only sealed (P2PAuth.Sealed, P2PAnswer.Sealed), and every
// punching decision is made from it.
type P2PInfo struct {
	Candidates []Candidate `json:"candidates"`
	NAT        string      `json:"nat"`
	// Link is the visitor's link ID (LinkID.String) that a punched path
	// joins; empty in the owner's box.
	Link string `json:"link,omitempty"`
	// TCP are the candidates of the sender's TCP punching port (host
	// addresses and the mapping the server saw over STUN on TCP); none
	// when it does not punch over TCP.
	TCP []Candidate `json:"tcp,omitempty"`
}

// DecodeP2PInfo parses and checks the plaintext of a sealed P2PInfo.
func DecodeP2PInfo(b []byte) (*P2PInfo, error) {
	var m P2PInfo
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: P2PInfo: %v", ErrMalformed, err)
	}
	if err := checkNAT(m.NAT); err != nil {
		return nil, fmt.Errorf("%w: P2PInfo: %v", ErrMalformed, err)
	}
	if err := checkCandidates(m.Candidates); err != nil {
		return nil, fmt.Errorf("%w: P2PInfo: %v", ErrMalformed, err)
	}
	if err := checkCandidates(m.TCP); err != nil {
		return nil, fmt.Errorf("%w: P2PInfo: tcp: %v", ErrMalformed, err)
	}
	if m.Link != "" {
		if _, err := ParseLinkID(m.Link); err != nil {
			return nil, fmt.Errorf("P2PInfo: %w", err)
		}
	}
	return &m, nil
}

// P2PGo tells the owner when to start punching.
type P2PGo struct {
	SessionID string `json:"sessionID"`
	DelayMs   int64  `json:"delayMs"`
}

// MaxResultError bounds P2PResult.Error, in bytes.
const MaxResultError = 512

// P2PResult reports an attempt's outcome for the server's tally.
type P2PResult struct {
	SessionID string `json:"sessionID"`
	Role      string `json:"role"`    // visitor or owner
	Outcome   string `json:"outcome"` // lan, direct or failed
	// Path is, on success, the kind of the peer's candidate the path runs
	// to (host, srflx, prflx, predicted, mapped); "" when unknown.
	Path string `json:"path,omitempty"`
	// Transport is, on success, what the direct path runs over: "udp"
	// (a punched UDP path with KCP) or "tcp" (a punched TCP connection,
	// package tcppunch); "" means udp (clients before it).
	Transport string `json:"transport,omitempty"`
	ElapsedMs int64  `json:"elapsedMs"`
	Packets   int    `json:"packets"`
	Error     string `json:"error,omitempty"`
	// NAT is the sender's NAT class as it knows it by now (it may have
	// learnt its filtering since the offer); empty keeps the offer's.
	NAT string `json:"nat,omitempty"`
}

// Visit opens a relayed connection to a secret proxy: the first frame a
// visitor writes on a stream it opens to the server. The visit handshake
// (visit.go) follows, end to end with the owner.
type Visit struct {
	Proxy     string `json:"proxy"`
	ProxyType string `json:"type"`
	// ServerUser is the user of the proxy's owner (the visitor's
	// serverUser); "" = the visitor's own user.
	ServerUser string `json:"serverUser,omitempty"`
}

func (*P2POffer) Type() Type  { return TypeP2POffer }
func (*P2PAnswer) Type() Type { return TypeP2PAnswer }
func (*P2PGo) Type() Type     { return TypeP2PGo }
func (*P2PResult) Type() Type { return TypeP2PResult }
func (*P2PAuth) Type() Type   { return TypeP2PAuth }
func (*Visit) Type() Type     { return TypeVisit }

var candidateKinds = map[string]bool{"host": true, "srflx": true, "predicted": true, "prflx": true, "mapped": true}

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
	return checkLen("share", m.Share, ShareSize)
}

func (m *P2PAuth) validate() error {
	if m.ID != "" {
		if err := checkID("offer ID", m.ID); err != nil {
			return err
		}
	}
	if err := checkSession(m.SessionID, true); err != nil {
		return err
	}
	if len(m.Share) != 0 {
		if err := checkLen("share", m.Share, ShareSize); err != nil {
			return err
		}
	}
	if len(m.Sealed) > MaxSealedInfo {
		return fmt.Errorf("sealed info of %d bytes, at most %d", len(m.Sealed), MaxSealedInfo)
	}
	return checkLen("tag", m.Tag, TagSize)
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
	if len(m.Sealed) > MaxSealedInfo {
		return fmt.Errorf("sealed info of %d bytes, at most %d", len(m.Sealed), MaxSealedInfo)
	}
	return nil
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
	switch m.Transport {
	case "", "udp", "tcp":
	default:
		return fmt.Errorf("transport %q (want udp or tcp)", m.Transport)
	}
	if err := checkNAT(m.NAT); err != nil {
		return err
	}
	if m.ElapsedMs < 0 || m.Packets < 0 || len(m.Error) > MaxResultError {
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
