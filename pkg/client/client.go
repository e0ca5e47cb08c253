// Package client is hopc: it keeps one authenticated mux session to hops,
// registers its proxies, and connects every stream the server opens to
// the proxy's local service. A lost session is re-established with
// exponential backoff and jitter, forever, unless the error is permanent
// (wrong token, incompatible version, refused heartbeat settings, a pinned
// certificate mismatch).
package client

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hopproxy/hop/pkg/auth"
	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/drain"
	"github.com/hopproxy/hop/pkg/idletimeout"
	"github.com/hopproxy/hop/pkg/logging"
	"github.com/hopproxy/hop/pkg/metrics"
	"github.com/hopproxy/hop/pkg/nodeset"
	"github.com/hopproxy/hop/pkg/protocol"
	"github.com/hopproxy/hop/pkg/transport"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrPermanent marks errors that reconnecting cannot fix; Run returns
	// them.
	ErrPermanent = errors.New("permanent error")
	// ErrVisitAuth: a visitor's proof does not match the proxy's secretKey.
	// ErrNotAllowed: the server relayed a visitor whose user the proxy's
	// allowUsers does not admit; the owner refuses it too.
	ErrNotAllowed = errors.New("visitor refused: its user is not in the proxy's allowUsers")
	ErrVisitAuth  = errors.New("visitor authentication failed: secretKey differs between the visitor and the proxy")
	// ErrStopped: Reload after Run ended or while it is ending.
	ErrStopped = errors.New("hopc is stopping: reload not applied")

	// errShutdown is the cause recorded when hopc itself stops.
	errShutdown = errors.New("hopc shutting down")
	// errNoDirect: a visitor has no direct P2P path (yet).
	errNoDirect = errors.New("no direct path")
	// errProxyStopped: a reload stopped the proxy a P2P link was for.
	errProxyStopped = errors.New("the proxy was stopped by a reload")
)

// Client is a running hopc.
type Client struct {
	cfg      *config.ClientConfig
	log      *slog.Logger
	id       string
	identity auth.Identity // made at start, kept across reconnects: proves this process is the same client
	tls      *tls.Config

	reloadMu sync.Mutex // one Reload at a time, and none while visitors start or stop
	run      registry   // the proxies and visitors served (registry.go)

	users  drain.Set      // open proxied connections
	connWG sync.WaitGroup // their goroutines

	healthWG sync.WaitGroup // health checks (health.go)

	// auto is heartbeat.interval = "auto" (autoheartbeat.go), nil for a
	// fixed interval; autoWG waits for its learning. idleTuning, set by
	// tests before Run, adjusts the learner's configuration.
	auto           *autoHB
	autoWG         sync.WaitGroup
	idleTuning     func(*idletimeout.Config)
	probeGraceBase time.Duration

	mu    sync.Mutex
	stats Stats

	warnMu   sync.Mutex
	lastWarn map[string]time.Time // per proxy, see localDown
	logLimit logging.Limiter      // per visitor: "visitor refused"

	liveMu sync.Mutex
	nodes  []*node       // the nodes attached to (node.go); their live sessions are under liveMu too
	liveCh chan struct{} // closed while some node has a live session

	// nodeWatch, set by tests before Run, replaces nodeset.Watch.
	nodeWatch func(ctx context.Context, onChange func(added, removed []nodeset.Node))

	portsMu sync.Mutex
	ports   map[string]int // the remote port of each remotePort = 0 proxy, once a node opened one
	waits   p2pWaits
	closers closers    // P2P links served as owner
	links   ownerLinks // the same, by link
	replays replayCache

	natMu        sync.Mutex
	natFiltering string    // filtering part of the NAT class, see learnFiltering
	natAt        time.Time // when it was learnt
	natDone      chan struct{}
	natOnce      sync.Once // closes natDone after the first learnFiltering

	mapper *p2pMapper   // port mapping of P2P sockets; nil when off or unused
	p2pka  p2pKeepalive // keepalive "auto" of direct UDP paths (p2plife.go)

	metrics clientMetrics // see stats.go
}

// Stats counts sessions and remembers why the last one ended.
type Stats struct {
	Sessions   int   // sessions that logged in
	Reconnects int   // connection attempts after the first
	LastCause  error // why the last session or attempt ended
	LoggedIn   bool  // a session is up now
}

// New prepares a client.
func New(cfg *config.ClientConfig, log *slog.Logger) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tc, err := transport.ClientTLS(cfg.Transport.TLS.ServerName, cfg.Transport.TLS.TrustedCAFile, cfg.Transport.TLS.CertSHA256)
	if err != nil {
		return nil, err
	}
	id := cfg.ClientID
	if id == "" {
		var b [8]byte
		rand.Read(b[:])
		id = "hopc-" + hex.EncodeToString(b[:])
	}
	l := log.With("client", id)
	if cfg.User != "" {
		l = log.With("user", cfg.User, "client", id)
	}
	c := &Client{cfg: cfg, log: l, id: id, identity: auth.NewIdentity(), tls: tc, lastWarn: map[string]time.Time{},
		waits:   p2pWaits{answers: map[string]chan *protocol.P2PAnswer{}, gos: map[string]chan *protocol.P2PGo{}},
		natDone: make(chan struct{})}
	c.run.init(cfg)
	c.auto = newAutoHB(c)
	if err := c.newMetrics(); err != nil {
		return nil, err
	}
	return c, nil
}

// ID is the client ID sent at login.
func (c *Client) ID() string { return c.id }

// User is the user this client logs in as.
func (c *Client) User() string { return c.cfg.User }

// Stats returns a snapshot.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

func (c *Client) serverAddr() string {
	return strings.Join(c.cfg.ServerEndpoints(), ",")
}

// Run keeps a session to every server node (node.go) until ctx ends
// (then it drains open connections for up to gracePeriod and returns nil)
// or every node refused the client for good (the error, wrapping
// ErrPermanent).
func (c *Client) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer c.healthWG.Wait()
	defer c.autoWG.Wait()
	defer cancel() // ends the health checks and the learning, also when Run gives up
	if c.auto != nil {
		c.autoWG.Add(1)
		go func() {
			defer c.autoWG.Done()
			c.auto.run(ctx)
		}()
	}
	if c.mapper == nil {
		c.mapper = startMapper(c.cfg, c.log)
		c.mapper.learn()
	}
	defer c.mapper.close() // after every P2P socket closed: deletes the mappings
	c.p2pka.init(ctx, c.log, c.stunServer, c.maxP2PKeepaliveTimeout())
	defer c.p2pka.stop()
	c.startVisitors(ctx)
	c.startHealthChecks(ctx)
	defer c.logLimit.Flush() // the counts of suppressed lines, before the process ends
	defer c.connWG.Wait()
	defer c.closePlugins() // after the sessions drained their streams, before waiting for them
	defer c.closers.closeAll()
	defer c.stopVisitors()
	return c.runNodes(ctx)
}

// loginFailure is the reason label of hop_client_login_failures_total for
// a login that failed with err.
func loginFailure(err error) string {
	var oe *net.OpError
	var cve *tls.CertificateVerificationError
	var ae tls.AlertError
	var rhe tls.RecordHeaderError
	switch {
	case errors.As(err, &oe) && oe.Op == "dial":
		return metrics.ReasonConnect
	case errors.Is(err, transport.ErrCertPin), errors.As(err, &cve), errors.As(err, &ae), errors.As(err, &rhe):
		return metrics.ReasonTLS
	case errors.Is(err, auth.ErrServerProof):
		return metrics.ReasonServerProof
	}
	return metrics.RefusalReason(err)
}

// permanent returns err wrapped with ErrPermanent when no reconnect can
// help, and nil otherwise.
func permanent(err error) error {
	var cve *tls.CertificateVerificationError
	var pe *protocol.Error
	switch {
	case errors.Is(err, auth.ErrAuthFailed):
		return fmt.Errorf("%w: %w", ErrPermanent, err)
	case errors.Is(err, auth.ErrServerProof), errors.Is(err, protocol.ErrVersion):
		return fmt.Errorf("%w: %w", ErrPermanent, err)
	case errors.Is(err, transport.ErrCertPin), errors.As(err, &cve):
		return fmt.Errorf("%w: %w; check transport.tls settings", ErrPermanent, err)
	case errors.As(err, &pe) && pe.Code == protocol.CodeHeartbeatRequired:
		return fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	return nil
}
