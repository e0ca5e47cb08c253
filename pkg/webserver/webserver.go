// Package webserver serves the HTTP APIs of hops and hopc on the
// [webServer] address: one listener, an http.Server with header and idle
// timeouts, HTTP basic auth on every path when user and password are set,
// and HTTPS when a certificate and key are set.
package webserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hopproxy/hop/pkg/config"
)

// ErrBadCert is returned by Start when the certificate or key of
// webServer.tls cannot be loaded.
var ErrBadCert = errors.New("webServer.tls: cannot load certificate and key")

// Server is a running web server. Close it when done.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	once sync.Once
	stop func() bool // unregisters the shut on ctx
	done chan struct{}
	err  error // of Serve, set before done closes

	mu     sync.Mutex
	closed bool           // no handler starts any more
	reqs   sync.WaitGroup // handlers running
}

// track counts the running handlers of h for Close.
func (s *Server) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		s.reqs.Add(1)
		s.mu.Unlock()
		defer s.reqs.Done()
		h.ServeHTTP(w, r)
	})
}

// Start listens on cfg.Addr:cfg.Port and serves h there until Close or
// until ctx ends (ctx is also the base context of every request). cfg
// has been validated; Port must not be 0.
func Start(ctx context.Context, cfg config.WebServerConfig, h http.Handler, log *slog.Logger) (*Server, error) {
	var tlsCfg *tls.Config
	if cfg.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w (%s, %s): %v", ErrBadCert, cfg.TLS.CertFile, cfg.TLS.KeyFile, err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	addr := net.JoinHostPort(cfg.Addr, strconv.Itoa(cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("webServer %s: %w", addr, err)
	}
	if cfg.User != "" || cfg.Password != "" {
		h = BasicAuth(cfg.User, cfg.Password, h)
	}
	s := &Server{ln: ln, done: make(chan struct{})}
	s.srv = &http.Server{
		Handler:           s.track(h),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	if tlsCfg != nil {
		s.ln = tls.NewListener(ln, tlsCfg)
	}
	log.Info("web server listening", "addr", ln.Addr().String(), "auth", cfg.Password != "", "tls", tlsCfg != nil)
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.err = err
			log.Error("web server stopped", "addr", ln.Addr().String(), "error", err)
		}
	}()
	s.stop = context.AfterFunc(ctx, s.shut)
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server: it closes the listener and every connection
// (which cancels the requests' contexts), then waits for Serve and the
// running handlers to return. Safe to call more than once; it
// returns the error that stopped serving, if any, other than Close.
func (s *Server) Close() error {
	s.stop()
	s.shut()
	<-s.done
	s.reqs.Wait()
	return s.err
}

// shut closes the listener and the connections once.
func (s *Server) shut() {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.srv.Close()
	})
}

// BasicAuth wraps h so that every request must carry HTTP basic auth with
// user and password; others get 401 with a WWW-Authenticate challenge.
// The comparison takes the same time whichever byte differs.
func BasicAuth(user, password string, h http.Handler) http.Handler {
	wantU, wantP := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		gotU, gotP := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
		match := subtle.ConstantTimeCompare(gotU[:], wantU[:]) & subtle.ConstantTimeCompare(gotP[:], wantP[:])
		if !ok || match != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="hop"`)
			http.Error(w, "401 unauthorized: this API needs webServer.user and webServer.password", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
