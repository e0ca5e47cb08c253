package auth

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"net"
	"testing"
	"time"

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

// tokens is a server's token table: users with their own token, and the
// shared token ("" = none) for everyone else.
func tokens(shared string, users map[string]string) Tokens {
	return func(user string) (string, bool) {
		if t, ok := users[user]; ok {
			return t, true
		}
		return shared, shared != ""
	}
}

var testID = NewIdentity()

// pipeDeadline bounds each side of a test login.
var pipeDeadline = 20 * time.Second

// login runs both sides over a pipe. mitm, if set, sits between them and
// may rewrite frames.
func login(t *testing.T, user, clientToken string, srv Tokens, cb, sb []byte, mitm func(client, server net.Conn)) (result, result) {
	t.Helper()
	c, s := net.Pipe()
	if mitm != nil {
		c1, c2 := net.Pipe()
		s1, s2 := net.Pipe()
		go mitm(c2, s1)
		c, s = c1, s2
	}
	// A flipped length byte leaves a side waiting for bytes that never
	// come; the deadline stands in for hops' and hopc's handshake timeout.
	c.SetDeadline(time.Now().Add(pipeDeadline))
	s.SetDeadline(time.Now().Add(pipeDeadline))
	done := make(chan result, 1)
	go func() {
		h, w, err := Server(s, srv, sb, welcome)
		s.Close()
		done <- result{h, w, err}
	}()
	w, err := Client(c, clientToken, cb, testID, protocol.ClientHello{User: user, ClientID: "c1", HeartbeatIntervalMs: 10000, Software: "hopc/test"})
	c.Close()
	return result{welcome: w, err: err}, <-done
}

// handshake is login as the empty user against a server whose shared
// token is serverToken.
func handshake(t *testing.T, clientToken, serverToken string, cb, sb []byte, mitm func(client, server net.Conn)) (result, result) {
	t.Helper()
	return login(t, "", clientToken, tokens(serverToken, nil), cb, sb, mitm)
}

var binding = bytes.Repeat([]byte{7}, 32)

func TestHandshakeOK(t *testing.T) {
	cr, sr := handshake(t, "secret", "secret", binding, binding, nil)
	if cr.err != nil || sr.err != nil {
		t.Fatalf("client %v, server %v", cr.err, sr.err)
	}
	if cr.welcome.SessionID != "s1" || sr.hello.ClientID != "c1" || sr.hello.HeartbeatIntervalMs != 10000 || sr.hello.Software != "hopc/test" {
		t.Fatalf("got welcome %+v, hello %+v", cr.welcome, sr.hello)
	}
	if !bytes.Equal(sr.hello.IdentityKey, testID.Public()) {
		t.Fatalf("server saw identity key %x, want %x", sr.hello.IdentityKey, testID.Public())
	}
}

func TestUsers(t *testing.T) {
	srv := tokens("shared-token", map[string]string{"alice": "alice-token", "bob": "bob-token"})
	tests := []struct {
		name, user, token string
		ok                bool
	}{
		{"listed user, own token", "alice", "alice-token", true},
		{"listed user, shared token", "alice", "shared-token", false},
		{"listed user, other user's token", "alice", "bob-token", false},
		{"unlisted user, shared token", "carol", "shared-token", true},
		{"empty user, shared token", "", "shared-token", true},
		{"empty user, a user's token", "", "alice-token", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cr, sr := login(t, tt.user, tt.token, srv, binding, binding, nil)
			if tt.ok {
				if cr.err != nil || sr.err != nil {
					t.Fatalf("client %v, server %v", cr.err, sr.err)
				}
				if sr.hello.User != tt.user {
					t.Fatalf("server saw user %q", sr.hello.User)
				}
				return
			}
			if !errors.Is(sr.err, ErrAuthFailed) || !errors.Is(cr.err, ErrAuthFailed) {
				t.Fatalf("client %v, server %v: want ErrAuthFailed on both", cr.err, sr.err)
			}
		})
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

// recorder captures the frames the server sends.
type recorder struct {
	net.Conn
	sent bytes.Buffer
}

func (r *recorder) Write(b []byte) (int, error) {
	r.sent.Write(b)
	return r.Conn.Write(b)
}

// An unknown user must be answered exactly like a known one with a wrong
// token: same frames, same sizes, same error, so that the server is no
// oracle for which users exist.
func TestUnknownUserLooksLikeWrongToken(t *testing.T) {
	answer := func(srv Tokens) (frames []protocol.Type, sizes []int, msg string, clientErr error) {
		c, s := net.Pipe()
		rec := &recorder{Conn: s}
		done := make(chan struct{})
		go func() {
			Server(rec, srv, binding, welcome)
			s.Close()
			close(done)
		}()
		_, clientErr = Client(c, "guess", binding, testID, protocol.ClientHello{User: "bob", ClientID: "c1"})
		c.Close()
		<-done
		r := bytes.NewReader(rec.sent.Bytes())
		for {
			typ, payload, err := protocol.ReadFrame(r)
			if err != nil {
				break
			}
			frames = append(frames, typ)
			if typ == protocol.TypeError {
				m, _ := protocol.Decode(typ, payload)
				msg = m.(*protocol.Error).Message
			}
			sizes = append(sizes, len(payload))
		}
		return
	}
	knownFrames, knownSizes, knownMsg, knownErr := answer(tokens("", map[string]string{"bob": "bob-token"}))
	for name, srv := range map[string]Tokens{
		"not listed, no shared token": tokens("", map[string]string{"alice": "alice-token"}),
		"no users, no shared token":   tokens("", nil),
	} {
		frames, sizes, msg, err := answer(srv)
		if !errors.Is(err, ErrAuthFailed) || !errors.Is(knownErr, ErrAuthFailed) {
			t.Fatalf("%s: client errors %v / %v, want ErrAuthFailed", name, err, knownErr)
		}
		if msg == "" || msg != knownMsg {
			t.Errorf("%s: message %q, for a wrong token %q", name, msg, knownMsg)
		}
		if len(frames) != len(knownFrames) || len(frames) != 2 || frames[0] != protocol.TypeChallenge || frames[1] != protocol.TypeError {
			t.Errorf("%s: frames %v, for a wrong token %v", name, frames, knownFrames)
		}
		for i := range sizes {
			if i < len(knownSizes) && sizes[i] != knownSizes[i] {
				t.Errorf("%s: frame %d has %d bytes, for a wrong token %d", name, i, sizes[i], knownSizes[i])
			}
		}
	}
}

// A relay in the middle terminating TLS twice sees different bindings on
// its two sides: it cannot splice the sessions even when it forwards every
// byte faithfully.
func TestSplicedSessionsFail(t *testing.T) {
	other := bytes.Repeat([]byte{8}, 32)
	cr, sr := handshake(t, "secret", "secret", binding, other, tamper(func(protocol.Message) {}))
	if !errors.Is(sr.err, ErrAuthFailed) || !errors.Is(cr.err, ErrAuthFailed) {
		t.Fatalf("client %v, server %v: want both to fail", cr.err, sr.err)
	}
	if sr.welcome != nil || cr.welcome != nil {
		t.Fatal("a spliced session got a Welcome")
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
	hello := func(f func(*protocol.ClientHello)) func(protocol.Message) {
		return func(m protocol.Message) {
			if h, ok := m.(*protocol.ClientHello); ok {
				f(h)
			}
		}
	}
	other := NewIdentity()
	tests := []struct {
		name string
		edit func(m protocol.Message)
	}{
		{"hello user", hello(func(h *protocol.ClientHello) { h.User = "evil" })},
		{"hello client ID", hello(func(h *protocol.ClientHello) { h.ClientID = "evil" })},
		{"hello nonce", hello(func(h *protocol.ClientHello) { h.Nonce[0] ^= 1 })},
		{"hello share", hello(func(h *protocol.ClientHello) { h.Share[0] ^= 2 })},
		{"hello identity key", hello(func(h *protocol.ClientHello) { h.IdentityKey = other.Public() })},
		{"hello heartbeat", hello(func(h *protocol.ClientHello) { h.HeartbeatIntervalMs = 0 })},
		{"hello software", hello(func(h *protocol.ClientHello) { h.Software = "x" })},
		{"challenge share", func(m protocol.Message) {
			if c, ok := m.(*protocol.Challenge); ok {
				c.Share[0] ^= 2
			}
		}},
		{"proof tag", func(m protocol.Message) {
			if p, ok := m.(*protocol.ClientProof); ok {
				p.Tag[0] ^= 1
			}
		}},
		{"proof signature", func(m protocol.Message) {
			if p, ok := m.(*protocol.ClientProof); ok {
				p.Signature[5] ^= 1
			}
		}},
		{"welcome timeout", func(m protocol.Message) {
			if w, ok := m.(*protocol.Welcome); ok {
				w.HeartbeatTimeoutMs = 1
			}
		}},
		{"welcome session", func(m protocol.Message) {
			if w, ok := m.(*protocol.Welcome); ok {
				w.SessionID = "mitm"
			}
		}},
		{"server tag", func(m protocol.Message) {
			if p, ok := m.(*protocol.ServerProof); ok {
				p.Tag[31] ^= 0x80
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cr, sr := handshake(t, "secret", "secret", binding, binding, tamper(tt.edit))
			// The client refuses (how it learns depends on where the
			// relay cut in: the server's error, a failed server tag, or
			// the connection closing under a pipe write).
			if cr.err == nil || cr.welcome != nil {
				t.Fatalf("client accepted a tampered handshake (server: %v)", sr.err)
			}
		})
	}
	// The untouched relay works, so the failures above come from the edits.
	cr, sr := handshake(t, "secret", "secret", binding, binding, tamper(func(protocol.Message) {}))
	if cr.err != nil || sr.err != nil {
		t.Fatalf("faithful relay: client %v, server %v", cr.err, sr.err)
	}
}

// flipper forwards the byte streams unchanged except for one bit of the
// byte at offset at of the direction toServer (or toward the client).
func flipper(toServer bool, at int) func(client, server net.Conn) {
	return func(client, server net.Conn) {
		pump := func(dst, src net.Conn, flip bool) {
			defer dst.Close()
			defer src.Close()
			buf := make([]byte, 4096)
			off := 0
			for {
				n, err := src.Read(buf)
				if n > 0 {
					if flip && at >= off && at < off+n {
						buf[at-off] ^= 0x01
					}
					off += n
					if _, werr := dst.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}
		go pump(server, client, toServer)
		pump(client, server, !toServer)
	}
}

// Flipping any single bit of either direction's handshake bytes makes the
// client refuse the session: framing, JSON, every field and the tags are
// all covered.
func TestEveryByteMatters(t *testing.T) {
	// The lengths of both directions of a clean handshake.
	var up, down int
	counted := make(chan struct{})
	count := func(client, server net.Conn) {
		pump := func(dst, src net.Conn, n *int) {
			defer dst.Close()
			defer src.Close()
			b, _ := io.Copy(dst, src)
			*n = int(b)
		}
		done := make(chan struct{})
		go func() { pump(server, client, &up); close(done) }()
		pump(client, server, &down)
		<-done
		close(counted)
	}
	if cr, sr := handshake(t, "secret", "secret", binding, binding, count); cr.err != nil || sr.err != nil {
		t.Fatalf("clean handshake: %v, %v", cr.err, sr.err)
	}
	<-counted
	if up < 200 || down < 100 {
		t.Fatalf("handshake of %d bytes up, %d down: counting failed", up, down)
	}
	step := 1
	if testing.Short() {
		step = 13
	}
	// Some flips announce a longer frame than follows; those logins end at
	// the deadline, which is what a handshake timeout does in hops/hopc.
	defer func(d time.Duration) { pipeDeadline = d }(pipeDeadline)
	pipeDeadline = time.Second
	for _, dir := range []struct {
		toServer bool
		n        int
	}{{true, up}, {false, down}} {
		for at := 0; at < dir.n; at += step {
			cr, sr := handshake(t, "secret", "secret", binding, binding, flipper(dir.toServer, at))
			if cr.err == nil {
				t.Fatalf("flipped bit at byte %d toward the %s: client accepted (server: %v)", at, map[bool]string{true: "server", false: "client"}[dir.toServer], sr.err)
			}
			if dir.toServer && sr.err == nil {
				t.Fatalf("flipped bit at byte %d toward the server: server accepted", at)
			}
		}
	}
}

// A client that knows the token but signs with a key other than the one
// it announced is refused.
func TestIdentityMustSign(t *testing.T) {
	other := NewIdentity()
	resign := func(client, server net.Conn) {
		// A relay that knows the token and the identity it swaps in: it
		// replaces the announced key, so the client's signature no longer
		// matches it and the tag breaks too.
		tamper(func(m protocol.Message) {
			if h, ok := m.(*protocol.ClientHello); ok {
				h.IdentityKey = other.Public()
			}
		})(client, server)
	}
	_, sr := handshake(t, "secret", "secret", binding, binding, resign)
	if sr.err == nil {
		t.Fatal("server accepted a swapped identity key")
	}
	// With a consistent transcript, only the signature is wrong: the server
	// says so (a bad_request, not auth_failed: the token was right).
	c, s := net.Pipe()
	done := make(chan error, 1)
	go func() {
		_, _, err := Server(s, tokens("secret", nil), binding, welcome)
		s.Close()
		done <- err
	}()
	_, err := Client(&sigBreaker{Conn: c}, "secret", binding, testID, protocol.ClientHello{ClientID: "c1"})
	c.Close()
	if serr := <-done; !errors.Is(serr, ErrIdentity) {
		t.Fatalf("server: %v, want ErrIdentity", serr)
	}
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeBadRequest {
		t.Fatalf("client: %v, want the server's bad_request", err)
	}
}

// sigBreaker corrupts the signature of the ClientProof the client writes,
// leaving its tag (which does not cover the proof itself) intact.
type sigBreaker struct{ net.Conn }

func (b *sigBreaker) Write(p []byte) (int, error) {
	if len(p) > protocol.HeaderSize && protocol.Type(p[1]) == protocol.TypeClientProof {
		m, err := protocol.Decode(protocol.TypeClientProof, p[protocol.HeaderSize:])
		if err == nil {
			cp := m.(*protocol.ClientProof)
			cp.Signature = ed25519.Sign(NewIdentity().Private, []byte("something else"))
			q, _ := protocol.Encode(cp)
			if _, err := b.Conn.Write(q); err != nil {
				return 0, err
			}
			return len(p), nil
		}
	}
	return b.Conn.Write(p)
}

// A client share that is the identity element would make the key
// independent of the token; the server refuses it.
func TestBadShare(t *testing.T) {
	c, s := net.Pipe()
	done := make(chan error, 1)
	go func() {
		_, _, err := Server(s, tokens("secret", nil), binding, welcome)
		s.Close()
		done <- err
	}()
	go protocol.WriteMsg(c, &protocol.ClientHello{ClientID: "c1", Nonce: make([]byte, 32), Share: make([]byte, 32), IdentityKey: testID.Public()})
	if _, err := protocol.ReadAs[*protocol.Challenge](c); err != nil {
		t.Fatal(err)
	}
	_, err := protocol.ReadAs[*protocol.Challenge](c)
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeBadRequest {
		t.Fatalf("got %v, want bad_request", err)
	}
	if err := <-done; err == nil {
		t.Fatal("server accepted the identity element as a share")
	}
}

func TestRefused(t *testing.T) {
	c, s := net.Pipe()
	go func() {
		Server(s, tokens("secret", nil), binding, func(*protocol.ClientHello) (*protocol.Welcome, *protocol.Error) {
			return nil, &protocol.Error{Code: protocol.CodeClientIDInUse, Message: "held by another hopc"}
		})
		s.Close()
	}()
	_, err := Client(c, "secret", binding, testID, protocol.ClientHello{ClientID: "c1"})
	var pe *protocol.Error
	if !errors.Is(err, ErrRejected) || !errors.As(err, &pe) || pe.Code != protocol.CodeClientIDInUse {
		t.Fatalf("err = %v", err)
	}
}

// A v1 hopc's first frame (version byte 1) gets the clear version error.
func TestVersion1Client(t *testing.T) {
	c, s := net.Pipe()
	done := make(chan error, 1)
	go func() {
		_, _, err := Server(s, tokens("secret", nil), binding, welcome)
		s.Close()
		done <- err
	}()
	// A v1 ClientHello: clientID, nonce, heartbeat; no share, no key.
	v1 := []byte(`{"clientID":"c1","nonce":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=","heartbeatIntervalMs":10000}`)
	frame := append([]byte{1, byte(protocol.TypeClientHello), 0, 0, 0, byte(len(v1))}, v1...)
	go c.Write(frame)
	m, err := protocol.ReadMsg(c)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := m.(*protocol.Error)
	if !ok || e.Code != protocol.CodeVersion || !bytes.Contains([]byte(e.Message), []byte("peer speaks v1, this build speaks v2")) {
		t.Fatalf("got %#v", m)
	}
	if err := <-done; !errors.Is(err, protocol.ErrVersion) {
		t.Fatalf("server: %v", err)
	}
	io.Copy(io.Discard, c)
}

// A v2 hopc talking to a v1 hops reads the v1 server's answer as a
// version error, which is permanent.
func TestVersion1Server(t *testing.T) {
	c, s := net.Pipe()
	go func() {
		protocol.ReadFrame(s)
		msg := []byte(`{"code":"version","message":"incompatible protocol version: peer speaks v2, this build speaks v1"}`)
		s.Write(append([]byte{1, byte(protocol.TypeError), 0, 0, 0, byte(len(msg))}, msg...))
		s.Close()
	}()
	_, err := Client(c, "secret", binding, testID, protocol.ClientHello{ClientID: "c1"})
	if !errors.Is(err, protocol.ErrVersion) {
		t.Fatalf("err = %v, want ErrVersion", err)
	}
	var ve *protocol.VersionError
	if !errors.As(err, &ve) || ve.Got != 1 {
		t.Fatalf("err = %v, want a VersionError naming v1", err)
	}
}

// A malformed first frame gets a bad_request naming the problem.
func TestMalformedHello(t *testing.T) {
	c, s := net.Pipe()
	go func() {
		Server(s, tokens("secret", nil), binding, welcome)
		s.Close()
	}()
	go protocol.WriteFrame(c, protocol.TypeClientHello, []byte(`{"clientID":"c1"}`))
	_, err := protocol.ReadAs[*protocol.Challenge](c)
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeBadRequest || !bytes.Contains([]byte(pe.Message), []byte("nonce")) {
		t.Fatalf("got %v", err)
	}
}

// A frame before authentication may announce at most 1 KiB: a peer that
// announces more is refused from the header alone, before its payload is
// read (the audit's 64 KiB handshake frames held 130 KB per handshake).
func TestPreAuthFrameCap(t *testing.T) {
	c, s := net.Pipe()
	defer c.Close()
	res := make(chan error, 1)
	go func() {
		_, _, err := Server(s, tokens("secret", nil), binding, welcome)
		s.Close()
		res <- err
	}()
	hdr := []byte{protocol.Version, byte(protocol.TypeClientHello), 0, 0, 0x10, 0} // announces 4096 bytes
	if _, err := c.Write(hdr); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-res:
		if !errors.Is(err, protocol.ErrFrameTooLarge) {
			t.Fatalf("got %v, want ErrFrameTooLarge", err)
		}
	case <-time.After(pipeDeadline):
		t.Fatal("the server waited for a 4 KiB pre-auth payload")
	}
}

// FuzzServer feeds arbitrary bytes as the client's side of a login: the
// server must not panic and must never accept, since no input can carry
// a valid tag without the token.
func FuzzServer(f *testing.F) {
	// Seeds: the frames of real handshakes, whole and cut.
	for _, user := range []string{"", "alice"} {
		c, s := net.Pipe()
		rec := &recorder{Conn: c}
		go func() {
			Server(s, tokens("secret", nil), binding, welcome)
			s.Close()
		}()
		Client(rec, "secret", binding, testID, protocol.ClientHello{User: user, ClientID: "c1"})
		c.Close()
		b := rec.sent.Bytes()
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{1, 1, 0, 0, 0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, in []byte) {
		rw := &fuzzConn{r: bytes.NewReader(in)}
		_, w, err := Server(rw, tokens("secret", nil), binding, welcome)
		if err == nil || w != nil {
			t.Fatalf("server accepted fuzz input: welcome %+v, err %v", w, err)
		}
	})
}

type fuzzConn struct {
	r *bytes.Reader
}

func (c *fuzzConn) Read(b []byte) (int, error)  { return c.r.Read(b) }
func (c *fuzzConn) Write(b []byte) (int, error) { return len(b), nil }

// FuzzClient feeds arbitrary bytes as the server's side of a login: the
// client must not panic and must never accept, since no input can carry a
// valid server tag without the token and the client's fresh share.
func FuzzClient(f *testing.F) {
	for _, user := range []string{"", "alice"} {
		c, s := net.Pipe()
		rec := &recorder{Conn: s}
		go func() {
			Server(rec, tokens("secret", nil), binding, welcome)
			s.Close()
		}()
		Client(c, "secret", binding, testID, protocol.ClientHello{User: user, ClientID: "c1"})
		c.Close()
		b := rec.sent.Bytes()
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{1, 6, 0, 0, 0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, in []byte) {
		rw := &fuzzConn{r: bytes.NewReader(in)}
		w, err := Client(rw, "secret", binding, testID, protocol.ClientHello{ClientID: "c1"})
		if err == nil || w != nil {
			t.Fatalf("client accepted fuzz input: welcome %+v, err %v", w, err)
		}
	})
}
