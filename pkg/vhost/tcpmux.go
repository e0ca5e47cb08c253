package vhost

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/hopproxy/hop/pkg/acceptloop"
	"github.com/hopproxy/hop/pkg/bridge"
	"github.com/hopproxy/hop/pkg/drain"
	"github.com/hopproxy/hop/pkg/metrics"
)

// TCPMuxRoute is one tcpmux proxy (multiplexer "httpconnect") on the
// tcpmuxHTTPConnectPort.
type TCPMuxRoute struct {
	Name string // in logs (user.name in hops)
	Dial Dialer
	// User and Password, when User is set, are required in a
	// Proxy-Authorization: Basic header (else 407).
	User, Password string
	// Wrap, when set, wraps the user's connection and the stream before
	// they are joined (a bandwidth limit).
	Wrap func(user, stream net.Conn) (net.Conn, net.Conn)
	// Conns, when set, counts the tunnels and their bytes (In from the
	// user, Out back).
	Conns *metrics.Conns
}

// TCPMuxConfig tunes a TCPMuxServer; zero values mean the defaults.
type TCPMuxConfig struct {
	// Passthrough forwards the CONNECT request itself to the local
	// service instead of answering "200 Connection established" (frp's
	// tcpmuxPassthrough).
	Passthrough bool
	// HeaderTimeout bounds the reading of the CONNECT request head, the
	// defense against slowloris. Default DefaultReadHeaderTimeout.
	HeaderTimeout time.Duration
	// DialTimeout bounds the opening of the stream to the proxy's client.
	// Default 10s.
	DialTimeout time.Duration
	// Conns, when set, holds the tunnels (for the drain of a two-phase
	// shutdown); else the server keeps its own.
	Conns *drain.Set
	// Log gets a debug line per refused connection; nil discards.
	Log *slog.Logger
}

// TCPMuxServer forwards HTTP CONNECT tunnels to the route of the CONNECT
// host (and Proxy-Authorization user, for routeByHTTPUser), as frp's
// tcpmux proxies with multiplexer "httpconnect" do. A request it cannot
// route gets an HTTP error response and is closed: 400 (malformed), 405
// (not CONNECT), 408 (head not read in time), 431 (head too large), 404
// (no proxy for the host), 407 (wrong or missing credentials), 502 (the
// proxy's client not reached).
type TCPMuxServer struct {
	cfg    TCPMuxConfig
	log    *slog.Logger
	routes *Router[*TCPMuxRoute]
	conns  *drain.Set
	head   drain.Set // connections whose CONNECT head is being read

	mu     sync.Mutex
	ln     net.Listener
	closed bool
	wg     sync.WaitGroup
}

// NewTCPMux returns a server without routes; Serve starts it.
func NewTCPMux(cfg TCPMuxConfig) *TCPMuxServer {
	if cfg.HeaderTimeout <= 0 {
		cfg.HeaderTimeout = DefaultReadHeaderTimeout
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	conns := cfg.Conns
	if conns == nil {
		conns = new(drain.Set)
	}
	return &TCPMuxServer{cfg: cfg, log: log, routes: NewRouter[*TCPMuxRoute](), conns: conns}
}

// Add routes CONNECT requests for rule.Domains (and, when rule.User is
// set, only those whose Proxy-Authorization user it is: routeByHTTPUser)
// to rt, sharing them with the other routes of rule.Group; an error
// wraps ErrTaken when another route has one of them, ErrGroupKey when
// its group has another key.
func (s *TCPMuxServer) Add(rule Rule, rt *TCPMuxRoute) (uint64, error) {
	rule.Locations = nil // a CONNECT has no path
	return s.routes.Add(rt.Name, rule, rt)
}

// Remove drops the routes of id; open tunnels go on.
func (s *TCPMuxServer) Remove(id uint64) { s.routes.Remove(id) }

// Lookup returns the route a CONNECT to host by Proxy-Authorization user
// user would take.
func (s *TCPMuxServer) Lookup(host, user string) (*TCPMuxRoute, bool) {
	return s.routes.Lookup(host, "/", user)
}

// Serve starts serving ln in the background; Close stops it.
func (s *TCPMuxServer) Serve(ln net.Listener) {
	s.mu.Lock()
	s.ln = ln
	closed := s.closed
	s.mu.Unlock()
	if closed {
		ln.Close()
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		acceptloop.Serve(context.Background(), ln, func(c net.Conn) {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.handle(c)
			}()
		}, acceptloop.Options{Log: s.log})
	}()
}

// StopAccepting closes the listener and the connections whose head is
// being read; tunnels go on.
func (s *TCPMuxServer) StopAccepting() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.ln != nil {
		s.ln.Close()
	}
	s.head.Close()
}

// Close stops accepting, closes the tunnels (when it keeps its own set)
// and waits for its goroutines. It may be called more than once.
func (s *TCPMuxServer) Close() error {
	s.StopAccepting()
	if s.cfg.Conns == nil {
		s.conns.CloseAll()
	}
	s.wg.Wait()
	return nil
}

// connectStatus maps an error of reading the head to its response.
func connectStatus(err error) (code int, text string) {
	var ne net.Error
	switch {
	case errors.Is(err, ErrConnectMethod):
		return 405, "Method Not Allowed"
	case errors.Is(err, ErrConnectTooLarge):
		return 431, "Request Header Fields Too Large"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return 408, "Request Timeout"
	case errors.Is(err, ErrConnectMalformed):
		return 400, "Bad Request"
	}
	return 0, "" // the peer went away: nobody to answer
}

// ReadConnect reads from c until it holds a whole CONNECT head (or
// fails), with deadline as c's read deadline (cleared before returning),
// and returns it and every byte read (the head and any bytes after it).
func ReadConnect(c net.Conn, deadline time.Time) (ConnectRequest, int, []byte, error) {
	if err := c.SetReadDeadline(deadline); err != nil {
		return ConnectRequest{}, 0, nil, err
	}
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, 0, 1024)
	for {
		if len(buf) == cap(buf) {
			nb := make([]byte, len(buf), min(2*cap(buf), MaxConnectHeadBytes))
			copy(nb, buf)
			buf = nb
		}
		n, rerr := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		req, end, err := ParseConnect(buf)
		if !errors.Is(err, errConnectShort) {
			return req, end, buf, err
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) && len(buf) > 0 {
				rerr = fmt.Errorf("%w: connection closed after %d bytes", ErrConnectMalformed, len(buf))
			}
			return req, 0, buf, rerr
		}
	}
}

func (s *TCPMuxServer) handle(c net.Conn) {
	src := c.RemoteAddr().String()
	if !s.head.Add(c) {
		c.Close()
		return
	}
	req, end, buf, err := ReadConnect(c, time.Now().Add(s.cfg.HeaderTimeout))
	s.head.Remove(c)
	if err != nil {
		s.log.Debug("tcpmux connection refused: no CONNECT request read", "src", src, "error", err)
		if code, text := connectStatus(err); code != 0 {
			s.reply(c, code, text, "", text+": "+err.Error()+"\n")
		}
		c.Close()
		return
	}
	user := ""
	if req.HasAuth {
		user = req.User
	}
	rt, ok := s.routes.Lookup(req.Host, "/", user)
	if !ok {
		s.log.Debug("tcpmux connection refused: no proxy for the host", "src", src, "host", req.Host)
		s.reply(c, 404, "Not Found", "", "404 Not Found: no proxy serves "+req.Host+" here\n")
		c.Close()
		return
	}
	if rt.User != "" {
		good := req.HasAuth && subtle.ConstantTimeCompare([]byte(req.User), []byte(rt.User))&subtle.ConstantTimeCompare([]byte(req.Password), []byte(rt.Password)) == 1
		if !good {
			s.log.Debug("tcpmux connection refused: proxy authentication failed", "proxy", rt.Name, "src", src)
			s.reply(c, 407, "Proxy Authentication Required", `Proxy-Authenticate: Basic realm="hop"`+"\r\n", "407 Proxy Authentication Required\n")
			c.Close()
			return
		}
	}
	if !s.conns.Add(c) {
		c.Close()
		return
	}
	defer s.conns.Remove(c)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DialTimeout)
	st, err := rt.Dial(ctx, src)
	cancel()
	if err != nil {
		s.log.Debug("tcpmux connection refused: cannot reach the proxy's client", "proxy", rt.Name, "src", src, "error", err)
		s.reply(c, 502, "Bad Gateway", "", "502 Bad Gateway: the proxy's client did not answer\n")
		c.Close()
		return
	}
	// Passthrough replays the CONNECT request to the local service;
	// otherwise hops answers it, and only the bytes after it are the
	// tunnel's.
	rest := buf
	if !s.cfg.Passthrough {
		rest = buf[end:]
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
		c.SetWriteDeadline(time.Time{})
		if err != nil {
			c.Close()
			st.Close()
			return
		}
	}
	if len(rest) > 0 {
		st.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := st.Write(rest)
		st.SetWriteDeadline(time.Time{})
		if err != nil {
			c.Close()
			st.Close()
			return
		}
	}
	uc, sc := c, st
	if rt.Wrap != nil {
		uc, sc = rt.Wrap(c, st)
	}
	if rt.Conns == nil {
		bridge.Join(uc, sc)
		return
	}
	rt.Conns.Opened()
	rt.Conns.In.Add(int64(len(rest)))
	bridge.JoinCounting(uc, sc, &rt.Conns.In, &rt.Conns.Out)
	rt.Conns.Closed()
}

// reply writes a short HTTP/1.1 response that closes the connection,
// within a bounded time.
func (s *TCPMuxServer) reply(c net.Conn, code int, text, extra, body string) {
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "HTTP/1.1 %d %s\r\n%sContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", code, text, extra, len(body), body)
}
