package vhost

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"time"

	"github.com/hopproxy/hop/pkg/metrics"
)

// Dialer opens a connection to the local service of a route: in hops, a
// work stream to the owning hopc. src is the address of the internet
// user, for the owner's logs.
type Dialer func(ctx context.Context, src string) (net.Conn, error)

// HTTPRoute is one http proxy on the vhost HTTP port.
type HTTPRoute struct {
	// Name names the proxy in logs and errors (user.name in hops).
	Name string
	// Dial connects to the proxy's local service.
	Dial Dialer
	// User and Password, when User is set, are required by basic
	// authentication before anything is forwarded.
	User, Password string
	// HostRewrite, when set, replaces the Host header sent on.
	HostRewrite string
	// RequestHeaders are set on requests sent on; ResponseHeaders on the
	// responses sent back.
	RequestHeaders, ResponseHeaders map[string]string
	// Conns, when set, counts the connections to the local service and
	// their bytes (In toward it, Out back).
	Conns *metrics.Conns
	// PerClient keeps the connections to the local service of each
	// browser connection apart, never reused for another's requests: the
	// owner writes a PROXY protocol header naming the browser on each.
	PerClient bool

	key string // URL host of its pooled connections, unique per Add
}

// HTTPConfig tunes an HTTPServer; zero values mean the defaults.
type HTTPConfig struct {
	// ResponseHeaderTimeout bounds the wait for a local service's
	// response headers (then 504). Default 60s.
	ResponseHeaderTimeout time.Duration
	// ReadHeaderTimeout bounds the reading of a request's headers, the
	// defense against slowloris. Default 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long.
	// Default 90s.
	IdleTimeout time.Duration
	// MaxHeaderBytes caps a request's headers (431 beyond). Default 64 KiB.
	MaxHeaderBytes int
	// NotFound is the body of the 404 for a host or path no route
	// serves (custom404Page); nil uses a short built-in page.
	NotFound []byte
	// Log gets one line per failed request at debug level; nil discards.
	Log *slog.Logger
}

// Defaults of HTTPConfig.
const (
	DefaultResponseHeaderTimeout = 60 * time.Second
	DefaultReadHeaderTimeout     = 10 * time.Second
	DefaultIdleTimeout           = 90 * time.Second
	DefaultMaxHeaderBytes        = 64 << 10
)

const builtin404 = `<!DOCTYPE html>
<html><head><title>404 Not Found</title></head>
<body><h1>404 Not Found</h1><p>No site is served here under this name.</p><hr><p>hop</p></body></html>
`

// HTTPServer forwards HTTP requests to the route of their Host, path and
// basic-auth user, with keep-alive on both sides, Upgrade (websocket)
// passed through and bodies streamed.
type HTTPServer struct {
	cfg    HTTPConfig
	log    *slog.Logger
	routes *Router[*HTTPRoute]
	tr     *http.Transport
	rp     *httputil.ReverseProxy
	srv    *http.Server

	mu   sync.Mutex
	next uint64
	ln   *chanListener
	wg   sync.WaitGroup
}

type ctxKey int

const (
	routeKeyCtx ctxKey = iota
	srcKeyCtx
)

// NewHTTP returns a server without routes; Serve starts it.
func NewHTTP(cfg HTTPConfig) *HTTPServer {
	if cfg.ResponseHeaderTimeout <= 0 {
		cfg.ResponseHeaderTimeout = DefaultResponseHeaderTimeout
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if cfg.NotFound == nil {
		cfg.NotFound = []byte(builtin404)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &HTTPServer{cfg: cfg, log: log, routes: NewRouter[*HTTPRoute]()}
	s.tr = &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			rt, _ := ctx.Value(routeKeyCtx).(*HTTPRoute)
			if rt == nil {
				return nil, errors.New("vhost: dial without a route")
			}
			src, _ := ctx.Value(srcKeyCtx).(string)
			c, err := rt.Dial(ctx, src)
			if err != nil || rt.Conns == nil {
				return c, err
			}
			rt.Conns.Opened()
			return &countedConn{Conn: c, conns: rt.Conns}, nil
		},
		ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       cfg.IdleTimeout,
		DisableCompression:    true,
	}
	s.rp = &httputil.ReverseProxy{
		Rewrite:        s.rewrite,
		Transport:      s.tr,
		FlushInterval:  -1,
		ModifyResponse: modifyResponse,
		ErrorHandler:   s.proxyError,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s
}

// Add routes the requests rule matches to rt; an error wraps ErrTaken
// when another route has one of its domains and locations. rt must not
// change afterwards.
func (s *HTTPServer) Add(rule Rule, rt *HTTPRoute) (uint64, error) {
	s.mu.Lock()
	s.next++
	rt.key = "route-" + strconv.FormatUint(s.next, 10) + ".hop.invalid"
	s.mu.Unlock()
	return s.routes.Add(rt.Name, rule, rt)
}

// Remove drops the routes of id, and idle connections to local services.
func (s *HTTPServer) Remove(id uint64) {
	s.routes.Remove(id)
	s.tr.CloseIdleConnections()
}

// Lookup returns the route a request to host and path by basic-auth user
// user would take.
func (s *HTTPServer) Lookup(host, path, user string) (*HTTPRoute, bool) {
	return s.routes.Lookup(host, path, user)
}

// Serve starts serving ln in the background; Shutdown or Close stop it.
func (s *HTTPServer) Serve(ln net.Listener) {
	cl := newChanListener(ln, s.log)
	s.mu.Lock()
	s.ln = cl
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.srv.Serve(cl)
	}()
}

// Shutdown stops accepting, waits for the requests in flight until ctx
// ends, then closes everything. It may be called more than once.
func (s *HTTPServer) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	s.Close()
	return err
}

// Close closes the listener and every connection, and waits for the
// server's goroutines. It may be called more than once.
func (s *HTTPServer) Close() error {
	s.srv.Close()
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	s.wg.Wait()
	s.tr.CloseIdleConnections()
	return nil
}

// ServeHTTP routes one request.
func (s *HTTPServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, pass, hasAuth := r.BasicAuth()
	rt, ok := s.routes.Lookup(r.Host, r.URL.Path, user)
	if !ok {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Length", strconv.Itoa(len(s.cfg.NotFound)))
		w.WriteHeader(http.StatusNotFound)
		w.Write(s.cfg.NotFound)
		return
	}
	if rt.User != "" {
		good := hasAuth && subtle.ConstantTimeCompare([]byte(user), []byte(rt.User))&subtle.ConstantTimeCompare([]byte(pass), []byte(rt.Password)) == 1
		if !good {
			w.Header().Set("WWW-Authenticate", `Basic realm="hop", charset="UTF-8"`)
			http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
			return
		}
	}
	ctx := context.WithValue(context.WithValue(r.Context(), routeKeyCtx, rt), srcKeyCtx, r.RemoteAddr)
	s.rp.ServeHTTP(w, r.WithContext(ctx))
}

func (s *HTTPServer) rewrite(pr *httputil.ProxyRequest) {
	rt := pr.In.Context().Value(routeKeyCtx).(*HTTPRoute)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = rt.key
	if rt.PerClient { // a pool of its own for each browser connection
		pr.Out.URL.Host = hex.EncodeToString([]byte(pr.In.RemoteAddr)) + "." + rt.key
	}
	// Keep the chain of proxies before hops, then add the browser.
	if prior := pr.In.Header.Values("X-Forwarded-For"); len(prior) > 0 {
		pr.Out.Header["X-Forwarded-For"] = prior
	}
	pr.SetXForwarded()
	pr.Out.Host = pr.In.Host
	if rt.HostRewrite != "" {
		pr.Out.Host = rt.HostRewrite
	}
	if rt.User != "" {
		pr.Out.Header.Del("Authorization") // hops checked it; it is not the local service's
	}
	for k, v := range rt.RequestHeaders {
		pr.Out.Header.Set(k, v)
	}
}

func modifyResponse(resp *http.Response) error {
	rt, _ := resp.Request.Context().Value(routeKeyCtx).(*HTTPRoute)
	if rt == nil {
		return nil
	}
	for k, v := range rt.ResponseHeaders {
		resp.Header.Set(k, v)
	}
	return nil
}

func (s *HTTPServer) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	rt, _ := r.Context().Value(routeKeyCtx).(*HTTPRoute)
	name := ""
	if rt != nil {
		name = rt.Name
	}
	code, msg := http.StatusBadGateway, "502 Bad Gateway: the site's local service did not answer"
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		code, msg = http.StatusGatewayTimeout, "504 Gateway Timeout: the site's local service did not answer in time"
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		code = 499 // the browser went away; nobody reads this
	}
	s.log.Debug("http request failed", "proxy", name, "host", r.Host, "path", r.URL.Path, "src", r.RemoteAddr, "status", code, "error", err)
	if code != 499 {
		http.Error(w, msg, code)
	}
}

// countedConn counts the bytes of a connection to a local service in
// conns, and its end.
type countedConn struct {
	net.Conn
	conns *metrics.Conns
	once  sync.Once
}

func (c *countedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.conns.Out.Add(int64(n))
	return n, err
}

func (c *countedConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.conns.In.Add(int64(n))
	return n, err
}

func (c *countedConn) Close() error {
	c.once.Do(c.conns.Closed)
	return c.Conn.Close()
}
