package auth

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/hopproxy/hop/pkg/protocol"
)

func welcome(*protocol.ClientHello) (*protocol.Welcome, *protocol.Error) {
	return &protocol.Welcome{SessionID: "s1", HeartbeatTimeoutMs: 30000}, nil
}

type result struct {
	hello   *protocol.ClientHello
	welcome *protocol.Welcome
	err     error
}

// handshake runs both sides over a pipe. mitm, if set, sits between them
// and may rewrite frames.
func handshake(t *testing.T, clientToken, serverToken string, cb, sb []byte, mitm func(client, server net.Conn)) (result, result) {
	t.Helper()
	c, s := net.Pipe()
	if mitm != nil {
		c1, c2 := net.Pipe()
		s1, s2 := net.Pipe()
		go mitm(c2, s1)
		c, s = c1, s2
	}
	done := make(chan result, 1)
	go func() {
		h, w, err := Server(s, serverToken, sb, welcome)
		s.Close()
		done <- result{h, w, err}
	}()
	w, err := Client(c, clientToken, cb, protocol.ClientHello{ClientID: "c1", HeartbeatIntervalMs: 10000})
	c.Close()
	return result{welcome: w, err: err}, <-done
}

var binding = bytes.Repeat([]byte{7}, 32)

func TestHandshakeOK(t *testing.T) {
	cr, sr := handshake(t, "secret", "secret", binding, binding, nil)
	if cr.err != nil || sr.err != nil {
		t.Fatalf("client %v, server %v", cr.err, sr.err)
	}
	if cr.welcome.SessionID != "s1" || sr.hello.ClientID != "c1" || sr.hello.HeartbeatIntervalMs != 10000 {
		t.Fatalf("got welcome %+v, hello %+v", cr.welcome, sr.hello)
	}
}

func TestWrongToken(t *testing.T) {
	cr, sr := handshake(t, "wrong", "secret", binding, binding, nil)
	if !errors.Is(sr.err, ErrAuthFailed) {
		t.Fatalf("server: %v, want ErrAuthFailed", sr.err)
	}
	if !errors.Is(cr.err, ErrAuthFailed) {
		t.Fatalf("client: %v, want ErrAuthFailed", cr.err)
	}
}

// A relay in the middle terminating TLS twice sees different bindings on
// its two sides: it cannot splice the sessions even when it forwards every
// byte faithfully.
func TestSplicedSessionsFail(t *testing.T) {
	other := bytes.Repeat([]byte{8}, 32)
	cr, sr := handshake(t, "secret", "secret", binding, other, nil)
	if !errors.Is(sr.err, ErrAuthFailed) || cr.err == nil {
		t.Fatalf("client %v, server %v: want both to fail", cr.err, sr.err)
	}
}

// tamper forwards frames both ways, passing each through edit.
func tamper(edit func(m protocol.Message)) func(client, server net.Conn) {
	return func(client, server net.Conn) {
		pump := func(dst, src net.Conn) {
			for {
				m, err := protocol.ReadMsg(src)
				if err != nil {
					dst.Close()
					src.Close()
					return
				}
				edit(m)
				if err := protocol.WriteMsg(dst, m); err != nil {
					src.Close()
					return
				}
			}
		}
		go pump(server, client)
		pump(client, server)
	}
}

func TestTamperedTranscript(t *testing.T) {
	tests := []struct {
		name string
		edit func(m protocol.Message)
	}{
		{"hello client ID", func(m protocol.Message) {
			if h, ok := m.(*protocol.ClientHello); ok {
				h.ClientID = "evil"
			}
		}},
		{"hello heartbeat", func(m protocol.Message) {
			if h, ok := m.(*protocol.ClientHello); ok {
				h.HeartbeatIntervalMs = 0
			}
		}},
		{"challenge nonce", func(m protocol.Message) {
			if c, ok := m.(*protocol.Challenge); ok {
				c.Nonce[0] ^= 1
			}
		}},
		{"welcome timeout", func(m protocol.Message) {
			if w, ok := m.(*protocol.Welcome); ok {
				w.HeartbeatTimeoutMs = 1
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cr, sr := handshake(t, "secret", "secret", binding, binding, tamper(tt.edit))
			if cr.err == nil {
				t.Fatalf("client accepted a tampered handshake (server: %v)", sr.err)
			}
			if !errors.Is(cr.err, ErrAuthFailed) && !errors.Is(cr.err, ErrServerProof) {
				t.Fatalf("client: %v", cr.err)
			}
		})
	}
	// The untouched relay works, so the failures above come from the edits.
	cr, sr := handshake(t, "secret", "secret", binding, binding, tamper(func(protocol.Message) {}))
	if cr.err != nil || sr.err != nil {
		t.Fatalf("faithful relay: client %v, server %v", cr.err, sr.err)
	}
}

func TestRefused(t *testing.T) {
	c, s := net.Pipe()
	go func() {
		Server(s, "secret", binding, func(*protocol.ClientHello) (*protocol.Welcome, *protocol.Error) {
			return nil, &protocol.Error{Code: protocol.CodeHeartbeatRequired, Message: "set heartbeat.interval"}
		})
		s.Close()
	}()
	_, err := Client(c, "secret", binding, protocol.ClientHello{ClientID: "c1"})
	var pe *protocol.Error
	if !errors.Is(err, ErrRejected) || !errors.As(err, &pe) || pe.Code != protocol.CodeHeartbeatRequired {
		t.Fatalf("err = %v", err)
	}
}

func TestVersionMismatch(t *testing.T) {
	c, s := net.Pipe()
	done := make(chan error, 1)
	go func() {
		_, _, err := Server(s, "secret", binding, welcome)
		s.Close()
		done <- err
	}()
	go c.Write([]byte{9, byte(protocol.TypeClientHello), 0, 0, 0, 2, '{', '}'})
	m, err := protocol.ReadMsg(c)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := m.(*protocol.Error); !ok || e.Code != protocol.CodeVersion {
		t.Fatalf("got %#v", m)
	}
	if err := <-done; !errors.Is(err, protocol.ErrVersion) {
		t.Fatalf("server: %v", err)
	}
	io.Copy(io.Discard, c)
}
