package protocol

import (
	"encoding/json"
	"fmt"
	"io"
)

// Type identifies the message carried by a frame.
type Type uint8

// Message types. Values are part of the wire format: never renumber.
const (
	TypeClientHello  Type = 1  // client → server, first frame after TLS
	TypeChallenge    Type = 2  // server → client
	TypeClientProof  Type = 3  // client → server
	TypeWelcome      Type = 4  // server → client, session parameters
	TypeServerProof  Type = 5  // server → client, last handshake frame
	TypeError        Type = 6  // either way; the sender closes afterwards
	TypeNewProxy     Type = 16 // client → server on the control stream
	TypeNewProxyResp Type = 17 // server → client
	TypeCloseProxy   Type = 18 // client → server
	TypePing         Type = 32 // either way, app heartbeat
	TypePong         Type = 33 // answer to a Ping
	TypeStartWork    Type = 48 // first frame of every data stream
)

var typeNames = map[Type]string{
	TypeClientHello: "ClientHello", TypeChallenge: "Challenge", TypeClientProof: "ClientProof",
	TypeWelcome: "Welcome", TypeServerProof: "ServerProof", TypeError: "Error",
	TypeNewProxy: "NewProxy", TypeNewProxyResp: "NewProxyResp", TypeCloseProxy: "CloseProxy",
	TypePing: "Ping", TypePong: "Pong", TypeStartWork: "StartWork",
}

func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Message is a typed payload of a frame.
type Message interface {
	Type() Type
	validate() error
}

// Sizes of handshake fields.
const (
	NonceSize = 32 // ClientHello.Nonce
	// ProofSize is the size of HMAC-SHA256 values.
	ProofSize = 32
	// ShareSize is a CPace share (ClientHello.Share, Challenge.Share): an
	// encoded ristretto255 element.
	ShareSize = 32
	// TagSize is a key confirmation tag (ClientProof.Tag, ServerProof.Tag).
	TagSize = 32
	// IdentityKeySize is an Ed25519 public key (ClientHello.IdentityKey);
	// SignatureSize an Ed25519 signature (ClientProof.Signature).
	IdentityKeySize = 32
	SignatureSize   = 64
	// MaxNameLen bounds proxy names, user names and client IDs.
	MaxNameLen = 64
)

// ClientHello opens the handshake. Share is the client's CPace share,
// made with the user's token as the secret, the TLS channel binding, User
// and ClientID as the channel identifier and Nonce as the session ID.
// IdentityKey is the Ed25519 public key of this hopc process, which signs
// the transcript in ClientProof: the server keeps a (User, ClientID) for
// the key that logged in with it while that session lives.
type ClientHello struct {
	// User is frp's user: "" or a name; its token is checked and its
	// proxy names are kept apart from other users'.
	User     string `json:"user,omitempty"`
	ClientID string `json:"clientID"`
	Nonce    []byte `json:"nonce"`
	Share    []byte `json:"share"`
	// IdentityKey is an Ed25519 public key.
	IdentityKey []byte `json:"identityKey"`
	// HeartbeatIntervalMs is the client's app heartbeat interval; 0 = none.
	HeartbeatIntervalMs int64  `json:"heartbeatIntervalMs"`
	Software            string `json:"software,omitempty"`
}

// Challenge carries the server's CPace share, made with the token the
// server has for ClientHello.User (a random one for a user it does not
// know).
type Challenge struct {
	Share []byte `json:"share"`
}

// ClientProof confirms the client's key: Tag is an HMAC of the transcript
// under a key derived from the CPace session key, Signature the identity
// key's Ed25519 signature of the same transcript hash.
type ClientProof struct {
	Tag       []byte `json:"tag"`
	Signature []byte `json:"signature"`
}

// Welcome tells an authenticated client the session's parameters.
type Welcome struct {
	SessionID string `json:"sessionID"`
	// HeartbeatIntervalMs and HeartbeatTimeoutMs are the server's own
	// settings; a client must send a heartbeat well within the timeout.
	HeartbeatIntervalMs int64 `json:"heartbeatIntervalMs"`
	HeartbeatTimeoutMs  int64 `json:"heartbeatTimeoutMs"`
	// ProbeKey (hex, ProbeKeySize bytes) admits the client's idle probes
	// (IdleProbe) while the session lives; absent from a server that
	// serves none.
	ProbeKey string `json:"probeKey,omitempty"`
	// MaxHeartbeatIntervalMs is the longest interval a HeartbeatUpdate
	// gets (heartbeat.maxInterval); 0 from a server that takes none.
	MaxHeartbeatIntervalMs int64 `json:"maxHeartbeatIntervalMs,omitempty"`
}

// ServerProof confirms the server's key: an HMAC of the transcript up to
// and including Welcome under a key derived from the CPace session key.
type ServerProof struct {
	Tag []byte `json:"tag"`
}

// Error codes carried by Error and NewProxyResp.
const (
	CodeAuthFailed        = "auth_failed"
	CodeVersion           = "version"
	CodeHeartbeatRequired = "heartbeat_required"
	CodeBadRequest        = "bad_request"
	CodePortNotAllowed    = "port_not_allowed"
	CodePortInUse         = "port_in_use"
	CodeProxyExists       = "proxy_exists"
	CodeTooManyProxies    = "too_many_proxies"
	CodeShuttingDown      = "shutting_down"
	// CodeGroupKey refuses a NewProxy whose groupKey differs from that of
	// the load-balancing group it names; the group is unchanged.
	CodeGroupKey = "group_key"
	// CodeTemporary: the server cannot do it now for lack of resources
	// (file descriptors, socket memory); the client retries later.
	CodeTemporary = "temporary"
	// CodeClientIDInUse: another hopc process (a different identity key)
	// holds a live session with this user and client ID. Retryable: the
	// stale session of a hopc that stopped answering ends at its
	// heartbeat timeout.
	CodeClientIDInUse = "client_id_in_use"
)

// Error is sent before the sender closes the connection or refuses a request.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message + " (" + e.Code + ")" }

// Proxy types known to the protocol.
const (
	ProxyTCP = "tcp"
	ProxyUDP = "udp"
)

// NewProxy asks the server to open a public port for a proxy.
type NewProxy struct {
	Name       string `json:"name"`
	ProxyType  string `json:"type"`
	RemotePort int    `json:"remotePort"`
	// IdleTimeoutMs closes an idle udp source session; udp only.
	IdleTimeoutMs int64 `json:"idleTimeoutMs,omitempty"`
	// AllowUsers lists the users whose visitors may reach a secret proxy
	// (frp semantics): empty = only the owner's own user, "*" = any
	// authenticated user.
	AllowUsers []string `json:"allowUsers,omitempty"`
	// BandwidthLimit asks the server to cap the proxy's traffic at this
	// many bytes per second in each direction, all its connections
	// together (transport.bandwidthLimitMode = "server"); 0 or absent for
	// no limit on the server.
	BandwidthLimit int64 `json:"bandwidthLimit,omitempty"`
	// Group names the load-balancing group of a tcp, http, https or tcpmux proxy
	// (frp's loadBalancer.group): tcp members share RemotePort, http and
	// https members their domains (and locations and routeByHTTPUser).
	// GroupKey must match the key the group's first member set.
	Group    string `json:"group,omitempty"`
	GroupKey string `json:"groupKey,omitempty"`

	// --- vhost: http and https proxies (see validateVhost for bounds).
	// CustomDomains are the host names routed to the proxy ("*." for a
	// wildcard); Subdomain is served below the server's subDomainHost.
	CustomDomains []string `json:"customDomains,omitempty"`
	Subdomain     string   `json:"subdomain,omitempty"`
	// The rest is http only: path prefixes, basic auth checked by the
	// server, routing by the basic-auth user, and rewriting.
	Locations         []string          `json:"locations,omitempty"`
	HTTPUser          string            `json:"httpUser,omitempty"`
	HTTPPassword      string            `json:"httpPassword,omitempty"`
	RouteByHTTPUser   string            `json:"routeByHTTPUser,omitempty"`
	HostHeaderRewrite string            `json:"hostHeaderRewrite,omitempty"`
	RequestHeaders    map[string]string `json:"requestHeaders,omitempty"`
	ResponseHeaders   map[string]string `json:"responseHeaders,omitempty"`
	// ProxyProtocol (http) says that hopc writes a PROXY protocol header
	// on each stream (transport.proxyProtocolVersion): the server then
	// never carries two browser connections' requests on one stream.
	ProxyProtocol bool `json:"proxyProtocol,omitempty"`
	// --- tcpmux: Multiplexer (tcpmux only, required) is "httpconnect".
	// A tcpmux proxy also takes CustomDomains, Subdomain, HTTPUser,
	// HTTPPassword (Proxy-Authorization) and RouteByHTTPUser.
	Multiplexer string `json:"multiplexer,omitempty"`
}

// NewProxyResp answers NewProxy. Error is empty on success.
type NewProxyResp struct {
	Name       string `json:"name"`
	RemotePort int    `json:"remotePort,omitempty"`
	// Domains (http, https) are the host names routed to the proxy, its
	// subdomain expanded with the server's subDomainHost.
	Domains []string `json:"domains,omitempty"`
	Code    string   `json:"code,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// CloseProxy releases a proxy's public port. Shutdown is set when the
// client is stopping (not removing the proxy): the server then keeps the
// proxy in its history of the client, as offline.
type CloseProxy struct {
	Name     string `json:"name"`
	Shutdown bool   `json:"shutdown,omitempty"`
}

// Ping is an app heartbeat. SentNanos is the sender's own clock, echoed
// back in Pong so the sender can compute the round trip time.
type Ping struct {
	Seq       uint64 `json:"seq"`
	SentNanos int64  `json:"sentNanos"`
}

// Pong answers Ping.
type Pong struct {
	Seq       uint64 `json:"seq"`
	EchoNanos int64  `json:"echoNanos"`
}

// StartWork is the first frame the server writes on a data stream; the
// proxied bytes (tcp) or length-prefixed datagrams (udp) follow it.
type StartWork struct {
	Proxy   string `json:"proxy"`
	SrcAddr string `json:"srcAddr"`
	// DstAddr is the server's address the user connected to (tcp) or
	// sent to (udp), host:port, for the PROXY protocol header hopc writes
	// to the local service; empty for secret proxies.
	DstAddr string `json:"dstAddr,omitempty"`
	// Visitor is the client ID of the visitor of a secret proxy whose
	// stream the server relays; empty for public proxies.
	Visitor string `json:"visitor,omitempty"`
	// VisitorUser is the user the visitor authenticated as at login, set
	// by the server from its session ("" for the empty user and for
	// public proxies).
	VisitorUser string `json:"visitorUser,omitempty"`
}

func (*ClientHello) Type() Type  { return TypeClientHello }
func (*Challenge) Type() Type    { return TypeChallenge }
func (*ClientProof) Type() Type  { return TypeClientProof }
func (*Welcome) Type() Type      { return TypeWelcome }
func (*ServerProof) Type() Type  { return TypeServerProof }
func (*Error) Type() Type        { return TypeError }
func (*NewProxy) Type() Type     { return TypeNewProxy }
func (*NewProxyResp) Type() Type { return TypeNewProxyResp }
func (*CloseProxy) Type() Type   { return TypeCloseProxy }
func (*Ping) Type() Type         { return TypePing }
func (*Pong) Type() Type         { return TypePong }
func (*StartWork) Type() Type    { return TypeStartWork }

func checkName(what, s string) error {
	if s == "" || len(s) > MaxNameLen {
		return fmt.Errorf("%s must be 1 to %d bytes, got %d", what, MaxNameLen, len(s))
	}
	for _, r := range s {
		ok := r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !ok {
			return fmt.Errorf("%s %q has a character outside [A-Za-z0-9._-]", what, s)
		}
	}
	return nil
}

func checkLen(what string, b []byte, n int) error {
	if len(b) != n {
		return fmt.Errorf("%s must be %d bytes, got %d", what, n, len(b))
	}
	return nil
}

func checkPort(p int) error {
	if p < 0 || p > 65535 {
		return fmt.Errorf("port %d out of range 0-65535", p)
	}
	return nil
}

// checkUser accepts "" (the empty user) or a name.
func checkUser(what, s string) error {
	if s == "" {
		return nil
	}
	return checkName(what, s)
}

func (m *ClientHello) validate() error {
	if err := checkUser("user", m.User); err != nil {
		return err
	}
	if err := checkName("clientID", m.ClientID); err != nil {
		return err
	}
	if m.HeartbeatIntervalMs < 0 {
		return fmt.Errorf("negative heartbeat interval")
	}
	if len(m.Software) > MaxNameLen {
		return fmt.Errorf("software must be at most %d bytes, got %d", MaxNameLen, len(m.Software))
	}
	if err := checkLen("nonce", m.Nonce, NonceSize); err != nil {
		return err
	}
	if err := checkLen("share", m.Share, ShareSize); err != nil {
		return err
	}
	return checkLen("identityKey", m.IdentityKey, IdentityKeySize)
}
func (m *Challenge) validate() error { return checkLen("share", m.Share, ShareSize) }
func (m *ClientProof) validate() error {
	if err := checkLen("tag", m.Tag, TagSize); err != nil {
		return err
	}
	return checkLen("signature", m.Signature, SignatureSize)
}
func (m *ServerProof) validate() error { return checkLen("tag", m.Tag, TagSize) }
func (m *Welcome) validate() error {
	if m.HeartbeatIntervalMs < 0 || m.HeartbeatTimeoutMs < 0 {
		return fmt.Errorf("negative heartbeat setting")
	}
	return nil
}
func (m *Error) validate() error {
	if m.Code == "" {
		return fmt.Errorf("error without code")
	}
	return nil
}

// groupTypes are the proxy types that join load-balancing groups.
var groupTypes = map[string]bool{ProxyTCP: true, ProxyHTTP: true, ProxyHTTPS: true, ProxyTCPMux: true}

func (m *NewProxy) validate() error {
	// An empty object means none, as an absent one does (omitempty), so
	// that a decoded message encodes to what it was decoded from.
	if len(m.RequestHeaders) == 0 {
		m.RequestHeaders = nil
	}
	if len(m.ResponseHeaders) == 0 {
		m.ResponseHeaders = nil
	}
	if err := checkName("proxy name", m.Name); err != nil {
		return err
	}
	switch m.ProxyType {
	case ProxyTCP, ProxyUDP, ProxyHTTP, ProxyHTTPS, ProxyTCPMux:
	case ProxySTCP, ProxySUDP, ProxyXTCP, ProxyXUDP:
		if m.RemotePort != 0 {
			return fmt.Errorf("a %s proxy has no remote port", m.ProxyType)
		}
	default:
		return fmt.Errorf("proxy type %q is not tcp, udp, stcp, sudp, xtcp, xudp, http, https or tcpmux", m.ProxyType)
	}
	if err := m.validateVhost(); err != nil {
		return err
	}
	if m.IdleTimeoutMs < 0 {
		return fmt.Errorf("negative idle timeout")
	}
	if m.BandwidthLimit < 0 {
		return fmt.Errorf("negative bandwidth limit")
	}
	if m.Group != "" {
		if !groupTypes[m.ProxyType] {
			return fmt.Errorf("only tcp, http, https and tcpmux proxies join a load-balancing group")
		}
		if err := checkName("group name", m.Group); err != nil {
			return err
		}
		if m.ProxyType == ProxyTCP && m.RemotePort == 0 {
			return fmt.Errorf("a load-balancing group of tcp proxies needs a remotePort")
		}
	}
	if len(m.GroupKey) > MaxNameLen*4 {
		return fmt.Errorf("groupKey is %d bytes, at most %d", len(m.GroupKey), MaxNameLen*4)
	}
	if len(m.AllowUsers) > MaxAllowUsers {
		return fmt.Errorf("%d allowUsers, at most %d", len(m.AllowUsers), MaxAllowUsers)
	}
	for _, u := range m.AllowUsers {
		if u != "*" {
			if err := checkName("allowUsers entry", u); err != nil {
				return err
			}
		}
	}
	return checkPort(m.RemotePort)
}
func (m *NewProxyResp) validate() error {
	if err := checkName("proxy name", m.Name); err != nil {
		return err
	}
	return checkPort(m.RemotePort)
}
func (m *CloseProxy) validate() error { return checkName("proxy name", m.Name) }
func (m *Ping) validate() error       { return nil }
func (m *Pong) validate() error       { return nil }
func (m *StartWork) validate() error {
	if m.Visitor != "" {
		if err := checkName("visitor", m.Visitor); err != nil {
			return err
		}
	}
	if err := checkUser("visitorUser", m.VisitorUser); err != nil {
		return err
	}
	return checkName("proxy name", m.Proxy)
}

func newMessage(t Type) Message {
	switch t {
	case TypeClientHello:
		return new(ClientHello)
	case TypeChallenge:
		return new(Challenge)
	case TypeClientProof:
		return new(ClientProof)
	case TypeWelcome:
		return new(Welcome)
	case TypeServerProof:
		return new(ServerProof)
	case TypeError:
		return new(Error)
	case TypeNewProxy:
		return new(NewProxy)
	case TypeNewProxyResp:
		return new(NewProxyResp)
	case TypeCloseProxy:
		return new(CloseProxy)
	case TypePing:
		return new(Ping)
	case TypePong:
		return new(Pong)
	case TypeStartWork:
		return new(StartWork)
	case TypeP2POffer:
		return new(P2POffer)
	case TypeP2PAnswer:
		return new(P2PAnswer)
	case TypeP2PGo:
		return new(P2PGo)
	case TypeP2PResult:
		return new(P2PResult)
	case TypeVisit:
		return new(Visit)
	case TypeP2PAuth:
		return new(P2PAuth)
	case TypeVisitHello:
		return new(VisitHello)
	case TypeVisitAccept:
		return new(VisitAccept)
	case TypeVisitConfirm:
		return new(VisitConfirm)
	case TypeIdleProbe:
		return new(IdleProbe)
	case TypeIdleProbeAck:
		return new(IdleProbeAck)
	case TypeHeartbeatUpdate:
		return new(HeartbeatUpdate)
	}
	return nil
}

// Decode turns a frame's payload into its message.
func Decode(t Type, payload []byte) (Message, error) {
	m := newMessage(t)
	if m == nil {
		return nil, fmt.Errorf("%w: %d", ErrUnknownType, uint8(t))
	}
	if err := json.Unmarshal(payload, m); err != nil {
		return nil, fmt.Errorf("%w: %v: %v", ErrMalformed, t, err)
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("%w: %v: %v", ErrMalformed, t, err)
	}
	return m, nil
}

// Encode returns the frame bytes of m.
func Encode(m Message) ([]byte, error) {
	payload, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return AppendFrame(make([]byte, 0, HeaderSize+len(payload)), m.Type(), payload)
}

// WriteMsg writes m as one frame with a single Write.
func WriteMsg(w io.Writer, m Message) error {
	b, err := Encode(m)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// ReadMsg reads and decodes one frame.
func ReadMsg(r io.Reader) (Message, error) { return ReadMsgMax(r, MaxPayload) }

// ReadMsgMax reads and decodes one frame of at most limit payload bytes (see
// ReadFrameMax).
func ReadMsgMax(r io.Reader, limit int) (Message, error) {
	t, payload, err := ReadFrameMax(r, limit)
	if err != nil {
		return nil, err
	}
	return Decode(t, payload)
}

// ReadAs reads one message and requires it to be a T. An Error message from
// the peer is returned as *Error, so callers can act on its Code.
func ReadAs[T Message](r io.Reader) (T, error) {
	var zero T
	m, err := ReadMsg(r)
	if err != nil {
		return zero, err
	}
	if want, ok := m.(T); ok {
		return want, nil
	}
	if e, ok := m.(*Error); ok {
		return zero, e
	}
	return zero, fmt.Errorf("%w: got %v, want %v", ErrUnexpected, m.Type(), zero.Type())
}
