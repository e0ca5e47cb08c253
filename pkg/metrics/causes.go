package metrics

import (
	"errors"

	"github.com/hopproxy/hop/pkg/admit"
	"github.com/hopproxy/hop/pkg/auth"
	"github.com/hopproxy/hop/pkg/heartbeat"
	"github.com/hopproxy/hop/pkg/mux"
	"github.com/hopproxy/hop/pkg/protocol"
)

// Causes of a lost session, the values of the cause label of
// hop_session_losses_total (hops) and hop_client_session_losses_total
// (hopc).
const (
	CauseHeartbeat      = "heartbeat"       // the app heartbeat timed out
	CauseMuxKeepalive   = "mux_keepalive"   // a mux ping got no answer
	CauseTCP            = "tcp"             // the TCP connection failed (reset, kernel keepalive)
	CauseServerShutdown = "server_shutdown" // hops shut down
	CauseClientClosed   = "client_closed"   // hopc closed the connection (hops' view)
	CauseServerClosed   = "server_closed"   // hops closed the connection (hopc's view)
	CauseClientShutdown = "client_shutdown" // hopc shut down (hopc's view)
	CauseReplaced       = "replaced"        // a new login of the same hopc replaced it
	CauseOther          = "other"           // anything else (a protocol violation, say)
)

// ServerLossCauses is every cause hops reports.
var ServerLossCauses = []string{CauseHeartbeat, CauseMuxKeepalive, CauseTCP, CauseServerShutdown, CauseClientClosed, CauseReplaced, CauseOther}

// ClientLossCauses is every cause hopc reports.
var ClientLossCauses = []string{CauseHeartbeat, CauseMuxKeepalive, CauseTCP, CauseServerClosed, CauseClientShutdown, CauseOther}

// LinkCause names a session's end caused by the link itself: the app
// heartbeat, the mux keepalive, or the TCP connection. It returns "" for
// any other cause, which the caller maps with its own sentinels.
func LinkCause(err error) string {
	var ce *mux.ConnError
	switch {
	case errors.Is(err, heartbeat.ErrTimeout):
		return CauseHeartbeat
	case errors.Is(err, mux.ErrKeepaliveTimeout):
		return CauseMuxKeepalive
	case errors.As(err, &ce):
		return CauseTCP
	}
	return ""
}

// Reasons a login is refused, the values of the reason label of
// hop_logins_refused_total: the protocol error codes a login refusal
// carries (pkg/protocol), plus too_many_handshakes (over limits.
// maxHandshakes or maxHandshakesPerIP, refused before TLS), tls (the TLS
// handshake failed) and other (the peer left or sent garbage mid-login).
const (
	ReasonAuthFailed        = protocol.CodeAuthFailed
	ReasonVersion           = protocol.CodeVersion
	ReasonBadRequest        = protocol.CodeBadRequest
	ReasonHeartbeatRequired = protocol.CodeHeartbeatRequired
	ReasonShuttingDown      = protocol.CodeShuttingDown
	ReasonClientIDInUse     = protocol.CodeClientIDInUse
	ReasonTooManyHandshakes = "too_many_handshakes"
	ReasonTLS               = "tls"
	ReasonOther             = "other"
)

// Reasons a login of hopc failed, besides those hops reports
// (RefusalReasons): the values of the reason label of
// hop_client_login_failures_total.
const (
	ReasonConnect     = "connect"      // the TCP connection to the node failed
	ReasonServerProof = "server_proof" // the server did not prove it knows the token
)

// ClientLoginFailureReasons is every reason hopc reports.
var ClientLoginFailureReasons = []string{ReasonConnect, ReasonTLS, ReasonServerProof, ReasonAuthFailed, ReasonVersion, ReasonBadRequest,
	ReasonHeartbeatRequired, ReasonShuttingDown, ReasonClientIDInUse, ReasonOther}

// RefusalReasons is every reason hops reports.
var RefusalReasons = []string{ReasonAuthFailed, ReasonVersion, ReasonBadRequest, ReasonHeartbeatRequired,
	ReasonShuttingDown, ReasonClientIDInUse, ReasonTooManyHandshakes, ReasonTLS, ReasonOther}

// RefusalReason names why a login failed, from the error the server's
// side of the login (auth.Server, admit.Gate) returned.
func RefusalReason(err error) string {
	var pe *protocol.Error
	switch {
	case errors.Is(err, admit.ErrTooMany), errors.Is(err, admit.ErrTooManyFromIP):
		return ReasonTooManyHandshakes
	case errors.Is(err, auth.ErrAuthFailed):
		return ReasonAuthFailed
	case errors.Is(err, protocol.ErrVersion):
		return ReasonVersion
	case errors.Is(err, protocol.ErrMalformed), errors.Is(err, protocol.ErrUnexpected), errors.Is(err, auth.ErrIdentity):
		return ReasonBadRequest
	case errors.As(err, &pe):
		for _, r := range RefusalReasons {
			if pe.Code == r {
				return r
			}
		}
	}
	return ReasonOther
}

// P2P outcomes, the values of the outcome label.
const (
	OutcomeLAN    = "lan"    // a direct path inside one network
	OutcomeDirect = "direct" // a direct path across NATs
	OutcomeRelay  = "relay"  // no direct path: the server relays
)

// Outcome reduces a P2PResult.outcome ("lan", "direct", "failed", or
// whatever a peer sent) to lan, direct or relay.
func Outcome(s string) string {
	switch s {
	case OutcomeLAN, OutcomeDirect:
		return s
	}
	return OutcomeRelay
}

// Visitor paths, the values of the path label of hop_visitor_path.
const (
	PathDirectUDP = "direct_udp"
	PathDirectTCP = "direct_tcp"
	PathRelay     = "relay"
)

// VisitorPaths is every path an xtcp/xudp visitor's link may use.
var VisitorPaths = []string{PathDirectUDP, PathDirectTCP, PathRelay}
