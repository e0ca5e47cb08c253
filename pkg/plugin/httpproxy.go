package plugin

import (
	"bufio"
	"context"
	"encoding/base64"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"time"

	"github.com/hopproxy/hop/pkg/bridge"
)

// HTTPProxy is the http_proxy plugin: an HTTP forward proxy. CONNECT
// requests get a tunnel to their host:port; requests with an absolute URI
// (GET http://host/path) are forwarded there. When a user is set, every
// request needs Proxy-Authorization (basic) with it.
type HTTPProxy struct {
	*httpServe
	user, pass string
	dial       Dialer
	log        *slog.Logger
	ctx        context.Context
	cancel     context.CancelFunc
	tunnels    conns // hijacked CONNECT streams and their targets
	rp         *httputil.ReverseProxy
	tr         *http.Transport
}

// NewHTTPProxy returns an HTTP proxy that requires user and pass (or no
// authentication when user is empty) and reaches targets with d.
func NewHTTPProxy(user, pass string, d Dialer, log *slog.Logger) *HTTPProxy {
	ctx, cancel := context.WithCancel(context.Background())
	p := &HTTPProxy{user: user, pass: pass, dial: d, log: log, ctx: ctx, cancel: cancel}
	p.tr = &http.Transport{
		DialContext:           d.DialContext,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 0,
		TLSHandshakeTimeout:   HandshakeTimeout,
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = pr.In.URL
			pr.Out.Host = pr.In.Host
		},
		Transport: p.tr,
		ErrorLog:  slog.NewLogLogger(log.Handler(), slog.LevelInfo),
	}
	p.httpServe = newHTTPServe(http.HandlerFunc(p.serveHTTP), log, nil)
	return p
}

// proxyAuthOK checks Proxy-Authorization.
func (p *HTTPProxy) proxyAuthOK(r *http.Request) bool {
	if p.user == "" {
		return true
	}
	scheme, cred, ok := strings.Cut(r.Header.Get("Proxy-Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return false
	}
	u, pw, ok := strings.Cut(string(b), ":")
	return ok && checkCredentials(u, pw, p.user, p.pass)
}

func (p *HTTPProxy) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.proxyAuthOK(r) {
		w.Header().Set("Proxy-Authenticate", `Basic realm="hop"`)
		http.Error(w, "407 proxy authentication required", http.StatusProxyAuthRequired)
		return
	}
	if r.Method == http.MethodConnect {
		p.connect(w, r)
		return
	}
	if !r.URL.IsAbs() || r.URL.Host == "" || (r.URL.Scheme != "http" && r.URL.Scheme != "https") {
		http.Error(w, "400 "+errNotAbsolute.Error()+" (this is an HTTP proxy)", http.StatusBadRequest)
		return
	}
	r.Header.Del("Proxy-Authorization")
	p.rp.ServeHTTP(w, r)
}

// connect opens the tunnel of a CONNECT request.
func (p *HTTPProxy) connect(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if _, _, err := net.SplitHostPort(host); err != nil {
		http.Error(w, "400 CONNECT needs host:port", http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, DialTimeout)
	tc, err := p.dial.DialContext(ctx, "tcp", host)
	cancel()
	if err != nil {
		p.log.Info("http_proxy: cannot connect", "src", r.RemoteAddr, "target", host, "error", err)
		http.Error(w, "502 cannot connect to "+host, http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		tc.Close()
		http.Error(w, "500 cannot tunnel", http.StatusInternalServerError)
		return
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		tc.Close()
		return
	}
	if !p.tunnels.add(conn) {
		tc.Close()
		return
	}
	defer p.tunnels.done(conn)
	if !p.tunnels.add(tc) {
		conn.Close()
		return
	}
	defer p.tunnels.done(tc)
	conn.SetDeadline(time.Time{})
	if _, err := conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		conn.Close()
		tc.Close()
		return
	}
	bridge.Join(bufferedConn{conn, brw.Reader}, tc)
}

// Close implements Handler.
func (p *HTTPProxy) Close() error {
	p.cancel()
	p.tunnels.close() // first: the handlers of open tunnels end with them
	p.httpServe.Close()
	p.tr.CloseIdleConnections()
	return nil
}

// bufferedConn reads what the HTTP server buffered before the conn.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c bufferedConn) Read(b []byte) (int, error) { return c.r.Read(b) }
