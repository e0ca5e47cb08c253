// Package auth runs hop's login handshake (protocol v2): a CPace
// password-authenticated key exchange (package pake) keyed by the user's
// token and bound to the TLS session, followed by key confirmation in both
// directions and an Ed25519 signature by the client's identity key.
//
//	client                                          server
//	ClientHello{user, clientID, nonce, share,
//	            identityKey, heartbeat, software} →
//	                                             ← Challenge{share}
//	ClientProof{tag, signature}                  →
//	                                             ← Welcome{…}, ServerProof{tag}
//	                                               or Error{auth_failed | …}
//
// The CPace generator is derived from the token, the channel identifier
// (a label, the TLS exporter binding, the user and the client ID) and the
// session ID (the client's nonce). Both sides hash every handshake frame,
// after the label and the binding, into a transcript hash; the tags are
// HMACs of that hash under keys derived from the CPace session key, and
// the signature covers the same hash. So:
//
//   - Nothing sent on the wire is a function of the token alone. A fake
//     hops (hopc skips certificate checks unless told otherwise) picks one
//     guess of the token for its share; the client's tag tells it whether
//     that one guess was right and nothing else: testing another guess
//     needs the discrete log of the client's share to another generator.
//     One online guess per connection, nothing to test offline. The
//     client answers a wrong guess with a tag (it confirms first, so that
//     hops can say plainly that the tokens differ) but only trusts the
//     server after checking its tag, which a fake hops cannot make.
//   - A man in the middle that terminates TLS on both sides has two
//     different bindings, hence two different generators: relaying every
//     byte faithfully still fails both confirmations.
//   - Any changed byte of any frame changes the transcript hash, so the
//     tags stop matching.
//   - An unknown user is answered with a share made from a random secret:
//     on the wire it looks exactly like a wrong token.
//   - The identity signature binds the login to a key only this hopc
//     process has; the server uses it to tell a reconnect of the same
//     process from another process claiming the same client ID.
package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/hopproxy/hop/pkg/pake"
	"github.com/hopproxy/hop/pkg/protocol"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrAuthFailed: the server did not accept the client's confirmation:
	// hopc's auth.token is not the token hops has for the user (or hops
	// does not know the user: the two look the same on purpose).
	ErrAuthFailed = errors.New("authentication failed: hopc's auth.token is not the token hops has for this user")
	// ErrServerProof: the server could not prove it knows the token: an
	// impostor, something in the middle, or a tampered frame.
	ErrServerProof = errors.New("server failed to prove it knows auth.token (an impostor or a man in the middle; check serverAddr and pin the certificate with transport.tls.certSHA256)")
	// ErrIdentity: the client's identity signature does not verify.
	ErrIdentity = errors.New("the client's identity signature does not verify")
	// ErrRejected: the server refused the login for another reason; the
	// *protocol.Error in the chain says which.
	ErrRejected = errors.New("server refused login")
)

// BindingLabel is the TLS exporter label of the channel binding.
const BindingLabel = "EXPORTER-hop-login-v2"

// Labels of the handshake, each naming one use so no value can stand in
// for another.
const (
	channelLabel   = "hop login v2 channel"
	transcriptInit = "hop login v2 transcript"
	clientConfirm  = "hop login v2 client confirm"
	serverConfirm  = "hop login v2 server confirm"
	signContext    = "hop login v2 identity signature\x00"
)

// Identity is a hopc process's identity key pair.
type Identity struct {
	Private ed25519.PrivateKey
}

// NewIdentity makes a fresh identity key.
func NewIdentity() Identity {
	_, priv, _ := ed25519.GenerateKey(nil) // crypto/rand: never fails
	return Identity{Private: priv}
}

// Public is the key sent in ClientHello.IdentityKey.
func (id Identity) Public() ed25519.PublicKey {
	return id.Private.Public().(ed25519.PublicKey)
}

// channel is the CPace channel identifier.
func channel(binding []byte, user, clientID string) []byte {
	var b []byte
	b = pake.AppendLV(b, []byte(channelLabel))
	b = pake.AppendLV(b, binding)
	b = pake.AppendLV(b, []byte(user))
	return pake.AppendLV(b, []byte(clientID))
}

// mac is the confirmation tag of one side over a transcript hash.
func mac(isk []byte, label string, th []byte) []byte {
	m := hmac.New(sha256.New, pake.Key(isk, label, 32))
	m.Write(th)
	return m.Sum(nil)
}

// signed is the message the identity key signs.
func signed(th []byte) []byte { return append([]byte(signContext), th...) }

// peer reads and writes handshake frames and hashes each into the
// transcript, which starts with the label and the channel binding.
type peer struct {
	rw io.ReadWriter
	th hash.Hash
}

func newPeer(rw io.ReadWriter, binding []byte) *peer {
	p := &peer{rw: rw, th: sha256.New()}
	p.th.Write(pake.AppendLV(pake.AppendLV(nil, []byte(transcriptInit)), binding))
	return p
}

func (p *peer) sum() []byte { return p.th.Sum(nil) }

func (p *peer) write(m protocol.Message) error {
	b, err := protocol.Encode(m)
	if err != nil {
		return err
	}
	p.th.Write(b)
	_, err = p.rw.Write(b)
	return err
}

// read reads one frame. It must be in the canonical encoding, the bytes
// protocol.Encode writes for the decoded message: then no byte of the
// handshake can change without changing what it says, not even in the last
// frame, which no tag covers (JSON's base64 ignores a character's unused
// low bits, for one).
func (p *peer) read() (protocol.Message, error) {
	// Nothing is authenticated yet: a frame may announce at most
	// MaxPreAuthPayload bytes, so an unauthenticated peer cannot make us
	// hold 64 KiB per handshake.
	t, payload, err := protocol.ReadFrameMax(p.rw, protocol.MaxPreAuthPayload)
	if err != nil {
		return nil, err
	}
	b, _ := protocol.AppendFrame(nil, t, payload) // the length was checked by ReadFrameMax
	p.th.Write(b)
	m, err := protocol.Decode(t, payload)
	if err != nil {
		return nil, err
	}
	if c, err := protocol.Encode(m); err != nil || !bytes.Equal(c, b) {
		return nil, fmt.Errorf("%w: %v: not in canonical encoding", protocol.ErrMalformed, t)
	}
	return m, nil
}

func readAs[T protocol.Message](p *peer) (T, error) {
	var zero T
	m, err := p.read()
	if err != nil {
		return zero, err
	}
	if want, ok := m.(T); ok {
		return want, nil
	}
	if e, ok := m.(*protocol.Error); ok {
		return zero, remoteError(e)
	}
	return zero, fmt.Errorf("%w: got %v, want %v", protocol.ErrUnexpected, m.Type(), zero.Type())
}

func remoteError(e *protocol.Error) error {
	switch e.Code {
	case protocol.CodeAuthFailed:
		// hops cannot tell a wrong token from a login relayed by a
		// TLS-terminating middlebox (the channel binding then differs):
		// both fail the confirmation.
		return fmt.Errorf("%w (server says: %s); if the tokens match, something between hopc and hops terminates TLS: the login is bound to the TLS channel, so a relayed one fails; pin hops' certificate with transport.tls.certSHA256 to tell the two apart", ErrAuthFailed, e.Message)
	case protocol.CodeVersion:
		return fmt.Errorf("%w: %s", protocol.ErrVersion, e.Message)
	}
	return fmt.Errorf("%w: %w", ErrRejected, e)
}

func nonce() []byte {
	b := make([]byte, protocol.NonceSize)
	rand.Read(b) // never fails (crypto/rand contract since Go 1.24)
	return b
}

// Client runs the client side over rw, which must be the TLS connection
// whose exporter produced binding. token is the token of hello.User. It
// fills in hello's Nonce, Share and IdentityKey and returns the server's
// Welcome once the server has proven itself.
func Client(rw io.ReadWriter, token string, binding []byte, id Identity, hello protocol.ClientHello) (*protocol.Welcome, error) {
	p := newPeer(rw, binding)
	hello.Nonce = nonce()
	st := pake.Start(pake.Initiator, []byte(token), channel(binding, hello.User, hello.ClientID), hello.Nonce, nil)
	hello.Share = st.Share()
	hello.IdentityKey = id.Public()
	if err := p.write(&hello); err != nil {
		return nil, err
	}
	ch, err := readAs[*protocol.Challenge](p)
	if err != nil {
		return nil, err
	}
	isk, err := st.Finish(ch.Share, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrServerProof, err)
	}
	th := p.sum()
	if err := p.write(&protocol.ClientProof{Tag: mac(isk, clientConfirm, th), Signature: ed25519.Sign(id.Private, signed(th))}); err != nil {
		return nil, err
	}
	w, err := readAs[*protocol.Welcome](p)
	if err != nil {
		return nil, err
	}
	want := mac(isk, serverConfirm, p.sum())
	sp, err := readAs[*protocol.ServerProof](p)
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(sp.Tag, want) {
		return nil, ErrServerProof
	}
	return w, nil
}

// Tokens returns the token user must prove, or ok false when the server
// has none for it (an unlisted user and no shared token).
type Tokens func(user string) (token string, ok bool)

// Decide is called by Server once the client has proven it knows the
// token and signed with its identity key. It returns the session's
// Welcome, or an Error to refuse the login.
type Decide func(hello *protocol.ClientHello) (*protocol.Welcome, *protocol.Error)

// authFailedMessage is the server's answer to a wrong token and to an
// unknown user alike.
func authFailedMessage(user string) string {
	return fmt.Sprintf("login as user %q failed: hopc's auth.token is not the token hops has for that user (its [[auth.users]] entry, or else the shared auth.token); set the same token on both sides", user)
}

// Server runs the server side. On failure it tells the client why (when
// the connection still works) and returns the cause; the ClientHello is
// returned whenever it was read, for logging.
func Server(rw io.ReadWriter, tokens Tokens, binding []byte, decide Decide) (*protocol.ClientHello, *protocol.Welcome, error) {
	p := newPeer(rw, binding)
	hello, err := readAs[*protocol.ClientHello](p)
	if err != nil {
		switch {
		case errors.Is(err, protocol.ErrVersion):
			protocol.WriteMsg(rw, &protocol.Error{Code: protocol.CodeVersion, Message: err.Error()})
		case errors.Is(err, protocol.ErrMalformed), errors.Is(err, protocol.ErrUnexpected):
			protocol.WriteMsg(rw, &protocol.Error{Code: protocol.CodeBadRequest, Message: "the login must start with a valid ClientHello: " + err.Error()})
		}
		return nil, nil, err
	}
	token, known := tokens(hello.User)
	secret := []byte(token)
	if !known {
		// Run the same exchange with a secret nobody has, so that an
		// unknown user looks exactly like a wrong token.
		secret = nonce()
	}
	st := pake.Start(pake.Responder, secret, channel(binding, hello.User, hello.ClientID), hello.Nonce, nil)
	if err := p.write(&protocol.Challenge{Share: st.Share()}); err != nil {
		return hello, nil, err
	}
	isk, err := st.Finish(hello.Share, nil)
	if err != nil {
		protocol.WriteMsg(rw, &protocol.Error{Code: protocol.CodeBadRequest, Message: "the ClientHello's share is not a valid CPace share"})
		return hello, nil, fmt.Errorf("ClientHello: %w", err)
	}
	th := p.sum()
	cp, err := readAs[*protocol.ClientProof](p)
	if err != nil {
		return hello, nil, err
	}
	if !hmac.Equal(cp.Tag, mac(isk, clientConfirm, th)) {
		protocol.WriteMsg(rw, &protocol.Error{Code: protocol.CodeAuthFailed, Message: authFailedMessage(hello.User)})
		if !known {
			return hello, nil, fmt.Errorf("%w (hops has no token for user %q: it is not in auth.users and auth.token is empty)", ErrAuthFailed, hello.User)
		}
		return hello, nil, ErrAuthFailed
	}
	if !ed25519.Verify(ed25519.PublicKey(hello.IdentityKey), signed(th), cp.Signature) {
		protocol.WriteMsg(rw, &protocol.Error{Code: protocol.CodeBadRequest, Message: ErrIdentity.Error()})
		return hello, nil, ErrIdentity
	}
	w, refuse := decide(hello)
	if refuse != nil {
		protocol.WriteMsg(rw, refuse)
		return hello, nil, fmt.Errorf("%w: %w", ErrRejected, refuse)
	}
	if err := p.write(w); err != nil {
		return hello, nil, err
	}
	if err := p.write(&protocol.ServerProof{Tag: mac(isk, serverConfirm, p.sum())}); err != nil {
		return hello, nil, err
	}
	return hello, w, nil
}
