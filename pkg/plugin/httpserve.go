package plugin

import (
	"crypto/subtle"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// httpServe runs an http.Server over the streams handed to Serve, for the
// plugins that speak HTTP (http_proxy, static_file, https2http,
// http2https). Its server starts with the first stream.
type httpServe struct {
	srv   *http.Server
	ln    *chanListener
	start sync.Once
	wg    sync.WaitGroup // the server's Serve loop
	g     gate           // the handlers running
	wrap  func(net.Conn) net.Conn
}

// newHTTPServe serves h. wrap (nil for none) turns each stream into the
// conn the server reads (tls.Server for https2http).
func newHTTPServe(h http.Handler, log *slog.Logger, wrap func(net.Conn) net.Conn) *httpServe {
	s := &httpServe{ln: newChanListener(), wrap: wrap}
	s.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !s.g.enter() {
				return
			}
			defer s.g.leave()
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: HandshakeTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s
}

// Serve hands conn to the server and returns when it is closed.
func (s *httpServe) Serve(conn net.Conn, src string) {
	s.start.Do(func() {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.srv.Serve(s.ln)
		}()
	})
	nc := &notifyConn{Conn: withSrc{conn, srcAddr(src)}, done: make(chan struct{})}
	var c net.Conn = nc
	if s.wrap != nil {
		c = s.wrap(nc)
	}
	if !s.ln.push(c) {
		conn.Close()
		return
	}
	<-nc.done
}

// Close stops the server, closes its streams and waits for its handlers.
func (s *httpServe) Close() error {
	s.ln.Close()
	s.start.Do(func() {}) // no server starts after Close
	s.srv.Close()
	s.g.closeWait()
	s.wg.Wait()
	return nil
}

// notifyConn closes done when it is closed.
type notifyConn struct {
	net.Conn
	once sync.Once
	done chan struct{}
}

func (c *notifyConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { close(c.done) })
	return err
}

// chanListener is a net.Listener whose connections are pushed to it.
type chanListener struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), closed: make(chan struct{})}
}

// push waits until Accept takes c, or reports false once closed.
func (l *chanListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.closed:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return srcAddr("plugin") }

// gate counts running calls and, once closed, admits no more.
type gate struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	return true
}

func (g *gate) leave() { g.wg.Done() }

func (g *gate) closeWait() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
}

// checkCredentials compares user and pass with the expected ones in
// constant time.
func checkCredentials(user, pass, wantUser, wantPass string) bool {
	u := subtle.ConstantTimeCompare([]byte(user), []byte(wantUser))
	p := subtle.ConstantTimeCompare([]byte(pass), []byte(wantPass))
	return u&p == 1
}

// basicAuth wraps h with HTTP basic authentication (Authorization), or
// returns h when user is empty.
func basicAuth(h http.Handler, user, pass string) http.Handler {
	if user == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || !checkCredentials(u, p, user, pass) {
			w.Header().Set("WWW-Authenticate", `Basic realm="hop"`)
			http.Error(w, "401 unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

var errNotAbsolute = errors.New("not a proxy request: the request target is not an absolute URI")
