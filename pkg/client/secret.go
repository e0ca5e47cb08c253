package client

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/protocol"
)

// Visitors of secret proxies prove, end to end through the server's relay,
// that they know the proxy's secretKey: the server never sees the secret.
const (
	visitLabel   = "hop visit v1"
	visitSkew    = time.Minute // how far a VisitAuth timestamp may be off
	maxSeenVisit = 65536       // bound of the replay cache
)

func visitMAC(secret, proxy, visitor string, unixMs int64, nonce []byte) []byte {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(visitLabel))
	for _, s := range []string{proxy, visitor} {
		mac.Write(binary.BigEndian.AppendUint16(nil, uint16(len(s))))
		mac.Write([]byte(s))
	}
	mac.Write(binary.BigEndian.AppendUint64(nil, uint64(unixMs)))
	mac.Write(nonce)
	return mac.Sum(nil)
}

// newVisitAuth is the visitor's proof for proxy.
func newVisitAuth(secret, proxy, visitor string) *protocol.VisitAuth {
	nonce := make([]byte, protocol.NonceSize)
	rand.Read(nonce)
	ms := time.Now().UnixMilli()
	return &protocol.VisitAuth{Visitor: visitor, UnixMs: ms, Nonce: nonce, MAC: visitMAC(secret, proxy, visitor, ms, nonce)}
}

// replayCache remembers recent VisitAuth nonces.
type replayCache struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

// fresh records nonce and reports whether it was new.
func (r *replayCache) fresh(nonce []byte, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]time.Time{}
	}
	if len(r.seen) >= maxSeenVisit {
		for k, t := range r.seen {
			if now.Sub(t) > 2*visitSkew {
				delete(r.seen, k)
			}
		}
	}
	if _, dup := r.seen[string(nonce)]; dup || len(r.seen) >= maxSeenVisit {
		return false
	}
	r.seen[string(nonce)] = now
	return true
}

// checkVisit verifies a visitor's proof for the owner's proxy p. visitor is
// the client ID the server vouches for.
func (c *Client) checkVisit(a *protocol.VisitAuth, p config.ProxyConfig, visitor string) error {
	now := time.Now()
	if a.Visitor != visitor {
		return fmt.Errorf("%w: proof names %q, the server says %q", ErrVisitAuth, a.Visitor, visitor)
	}
	if d := now.Sub(time.UnixMilli(a.UnixMs)); d > visitSkew || d < -visitSkew {
		return fmt.Errorf("visitor authentication failed: timestamp %v off; check the clocks", d.Round(time.Second))
	}
	if !hmac.Equal(a.MAC, visitMAC(p.SecretKey, p.Name, visitor, a.UnixMs, a.Nonce)) {
		return ErrVisitAuth
	}
	if !c.replays.fresh(a.Nonce, now) {
		return errors.New("visitor authentication failed: replayed proof")
	}
	return nil
}

// serveVisitor serves a visitor's connection the server relays to the
// owner's secret proxy p: it checks the proof, answers VisitOK and then
// carries the connection to the local service.
func (c *Client) serveVisitor(st net.Conn, p config.ProxyConfig, sw *protocol.StartWork) {
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	a, err := protocol.ReadAs[*protocol.VisitAuth](st)
	st.SetReadDeadline(time.Time{})
	if err == nil {
		err = c.checkVisit(a, p, sw.Visitor)
	}
	if err != nil {
		c.logLimit.Log(context.Background(), c.log, slog.LevelWarn, sw.Visitor, "visitor refused", "proxy", p.Name, "visitor", sw.Visitor, "error", err)
		protocol.WriteMsg(st, &protocol.Error{Code: protocol.CodeAuthFailed, Message: err.Error()})
		st.Close()
		return
	}
	if err := protocol.WriteMsg(st, &protocol.VisitOK{}); err != nil {
		st.Close()
		return
	}
	c.serveLocal(st, p, sw.SrcAddr)
}

// openRelay opens a relayed connection from a visitor to a secret proxy
// through the server. The returned conn yields the owner's data once the
// owner accepted the proof; the caller may write at once.
func (c *Client) openRelay(v config.VisitorConfig) (net.Conn, error) {
	l, err := c.current()
	if err != nil {
		return nil, err
	}
	st, err := l.ms.Open()
	if err != nil {
		return nil, fmt.Errorf("open relay stream: %w", err)
	}
	b1, _ := protocol.Encode(&protocol.Visit{Proxy: v.ServerName, ProxyType: string(v.Type), ServerUser: v.ServerUser})
	b2, _ := protocol.Encode(newVisitAuth(v.SecretKey, v.ServerName, c.id))
	if _, err := st.Write(append(b1, b2...)); err != nil {
		st.Close()
		return nil, err
	}
	return &acceptedConn{Conn: st, onRefused: func(err error) { c.visitRefused(v, err) }}, nil
}

// acceptedConn reads the owner's VisitOK (or the error of the server or
// the owner) before the first byte of data.
type acceptedConn struct {
	net.Conn
	once      sync.Once
	err       error
	onRefused func(error)
}

func (a *acceptedConn) Read(b []byte) (int, error) {
	if err := a.accept(); err != nil {
		return 0, err
	}
	return a.Conn.Read(b)
}

// WaitReadable lets bridge.Copy wait for data without holding a buffer.
func (a *acceptedConn) WaitReadable() error {
	if err := a.accept(); err != nil {
		return err
	}
	_, err := a.Conn.Read(nil) // a yamux stream: waits, consumes nothing
	return err
}

// accept reads the owner's answer once.
func (a *acceptedConn) accept() error {
	a.once.Do(func() {
		a.Conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err := protocol.ReadAs[*protocol.VisitOK](a.Conn)
		a.Conn.SetReadDeadline(time.Time{})
		if err != nil {
			a.err = err
			var pe *protocol.Error
			if errors.As(err, &pe) {
				a.onRefused(pe)
			}
		}
	})
	return a.err
}

// visitRefused logs why the server or the owner refused a visitor, at most
// once per warnEvery per visitor and reason.
func (c *Client) visitRefused(v config.VisitorConfig, err error) {
	if c.due("visit/" + v.Name + "/" + err.Error()) {
		c.log.Warn("visit refused", "visitor", v.Name, "server_name", v.ServerName, "error", err)
	}
}
