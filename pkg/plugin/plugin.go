// Package plugin holds hopc's client plugins: ways for a proxy's streams
// to reach a service other than dialing localIP:localPort (frp's
// [proxies.plugin]). Each plugin is a Handler, built from the proxy's
// config.PluginConfig by New; hopc hands it every stream of the proxy.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hopproxy/hop/pkg/config"
)

// Handler serves the streams of one proxy in place of a local service.
type Handler interface {
	// Serve handles conn, whose user is at src (the address hops saw,
	// or a description for visitor streams), and returns when conn is
	// done; Serve has closed it by then. Serve is called from many
	// goroutines at once.
	Serve(conn net.Conn, src string)
	// Close ends the streams being served and makes later Serve calls
	// close their conn at once. It waits for the handler's goroutines,
	// and is safe to call more than once.
	Close() error
}

// Dialer opens connections to the targets a plugin reaches (the
// destination of a SOCKS5 or HTTP proxy request, the backend of
// https2http). *net.Dialer is one; tests swap in others.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Sentinel errors.
var (
	// ErrUnknownType: New was given a type it does not know.
	ErrUnknownType = errors.New("unknown plugin type")
	// ErrClosed: the handler is closed.
	ErrClosed = errors.New("plugin closed")
)

// DialTimeout bounds every connect a plugin makes.
const DialTimeout = 10 * time.Second

// HandshakeTimeout bounds reading a request head (SOCKS5 greeting and
// request, HTTP request headers, TLS handshake).
const HandshakeTimeout = 15 * time.Second

// New builds the handler of a plugin config, which must be valid
// (config.ProxyConfig.Validate). log receives one line per refused or
// failed connection.
func New(cfg config.PluginConfig, log *slog.Logger) (Handler, error) {
	d := &net.Dialer{Timeout: DialTimeout}
	switch cfg.Type {
	case config.PluginUnixSocket:
		return NewUnixSocket(cfg.UnixPath, log), nil
	case config.PluginSOCKS5:
		return NewSOCKS5(cfg.Username, cfg.Password, d, log), nil
	case config.PluginHTTPProxy:
		return NewHTTPProxy(cfg.HTTPUser, cfg.HTTPPassword, d, log), nil
	case config.PluginStaticFile:
		return NewStaticFile(cfg.LocalPath, cfg.StripPrefix, cfg.HTTPUser, cfg.HTTPPassword, log)
	case config.PluginHTTPS2HTTP:
		return NewHTTPS2HTTP(cfg, log)
	case config.PluginHTTP2HTTPS:
		return NewHTTP2HTTPS(cfg, log), nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownType, cfg.Type)
}

// conns tracks the streams a handler serves so that Close can end them.
type conns struct {
	mu     sync.Mutex
	m      map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// add registers c, or reports false (and closes c) once closed.
func (t *conns) add(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		c.Close()
		return false
	}
	if t.m == nil {
		t.m = map[net.Conn]struct{}{}
	}
	t.m[c] = struct{}{}
	t.wg.Add(1)
	return true
}

func (t *conns) done(c net.Conn) {
	t.mu.Lock()
	delete(t.m, c)
	t.mu.Unlock()
	t.wg.Done()
}

// close closes every registered conn and waits for their done.
func (t *conns) close() {
	t.mu.Lock()
	t.closed = true
	for c := range t.m {
		c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
}

// srcAddr is the address of a stream's user as a net.Addr, so that
// net/http sees it as the request's RemoteAddr.
type srcAddr string

func (a srcAddr) Network() string { return "tcp" }
func (a srcAddr) String() string  { return string(a) }

// withSrc makes conn report src as its remote address.
type withSrc struct {
	net.Conn
	src net.Addr
}

func (c withSrc) RemoteAddr() net.Addr { return c.src }
