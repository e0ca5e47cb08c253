// Package auth runs hop's login handshake: client and server prove to each
// other that they know the shared token without sending it, with HMAC-SHA256
// proofs bound to the TLS session (a channel binding from
// tls.ConnectionState.ExportKeyingMaterial) and to a hash of every
// handshake frame. A man in the middle who terminates TLS on both sides sees
// two different bindings and cannot produce or relay a valid proof, and a
// tampered frame changes the transcript, so the proofs stop matching.
package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/hopproxy/hop/pkg/protocol"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrAuthFailed: the server rejected the client's proof, i.e. the
	// client's auth.token differs from the server's.
	ErrAuthFailed = errors.New("authentication failed: auth.token differs between hopc and hops")
	// ErrServerProof: the server accepted us but could not prove it knows
	// the token: the tokens differ or something sits in the middle.
	ErrServerProof = errors.New("server failed to prove it knows auth.token (different token, or a man in the middle)")
	// ErrRejected: the server refused the login for another reason; the
	// *protocol.Error in the chain says which.
	ErrRejected = errors.New("server refused login")
)

// BindingLabel is the TLS exporter label of the channel binding.
const BindingLabel = "EXPORTER-hop-auth-v1"

const (
	clientLabel = "hop/1 client proof"
	serverLabel = "hop/1 server proof"
)

// peer reads and writes handshake frames and hashes each into the
// transcript.
type peer struct {
	rw io.ReadWriter
	th hash.Hash
}

func (p *peer) write(m protocol.Message) error {
	b, err := protocol.Encode(m)
	if err != nil {
		return err
	}
	p.th.Write(b)
	_, err = p.rw.Write(b)
	return err
}

func (p *peer) read() (protocol.Message, error) {
	t, payload, err := protocol.ReadFrame(p.rw)
	if err != nil {
		return nil, err
	}
	b, _ := protocol.AppendFrame(nil, t, payload) // the length was checked by ReadFrame
	p.th.Write(b)
	return protocol.Decode(t, payload)
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
		return fmt.Errorf("%w (server says: %s)", ErrAuthFailed, e.Message)
	case protocol.CodeVersion:
		return fmt.Errorf("%w: %s", protocol.ErrVersion, e.Message)
	}
	return fmt.Errorf("%w: %w", ErrRejected, e)
}

// proof computes HMAC-SHA256 keyed by the token over the label, the
// length-prefixed channel binding and the transcript hash so far.
func proof(token, label string, binding, transcript []byte) []byte {
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write([]byte(label))
	mac.Write(binary.BigEndian.AppendUint16(nil, uint16(len(binding))))
	mac.Write(binding)
	mac.Write(transcript)
	return mac.Sum(nil)
}

func nonce() []byte {
	b := make([]byte, protocol.NonceSize)
	rand.Read(b) // never fails (crypto/rand contract since Go 1.24)
	return b
}

// Client runs the client side over rw, which must be the TLS connection
// whose exporter produced binding. It fills in hello.Nonce and returns the
// server's Welcome once the server has proven itself.
func Client(rw io.ReadWriter, token string, binding []byte, hello protocol.ClientHello) (*protocol.Welcome, error) {
	p := &peer{rw: rw, th: sha256.New()}
	hello.Nonce = nonce()
	if err := p.write(&hello); err != nil {
		return nil, err
	}
	if _, err := readAs[*protocol.Challenge](p); err != nil {
		return nil, err
	}
	if err := p.write(&protocol.ClientProof{Proof: proof(token, clientLabel, binding, p.th.Sum(nil))}); err != nil {
		return nil, err
	}
	w, err := readAs[*protocol.Welcome](p)
	if err != nil {
		return nil, err
	}
	want := proof(token, serverLabel, binding, p.th.Sum(nil))
	sp, err := readAs[*protocol.ServerProof](p)
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(sp.Proof, want) {
		return nil, ErrServerProof
	}
	return w, nil
}

// Decide is called by Server once the client has proven it knows the
// token. It returns the session's Welcome, or an Error to refuse the login.
type Decide func(hello *protocol.ClientHello) (*protocol.Welcome, *protocol.Error)

// Server runs the server side. On failure it tells the client why (when
// the connection still works) and returns the cause; the ClientHello is
// returned whenever it was read, for logging.
func Server(rw io.ReadWriter, token string, binding []byte, decide Decide) (*protocol.ClientHello, *protocol.Welcome, error) {
	p := &peer{rw: rw, th: sha256.New()}
	hello, err := readAs[*protocol.ClientHello](p)
	if err != nil {
		if errors.Is(err, protocol.ErrVersion) {
			protocol.WriteMsg(rw, &protocol.Error{Code: protocol.CodeVersion, Message: err.Error()})
		}
		return nil, nil, err
	}
	if err := p.write(&protocol.Challenge{Nonce: nonce()}); err != nil {
		return hello, nil, err
	}
	want := proof(token, clientLabel, binding, p.th.Sum(nil))
	cp, err := readAs[*protocol.ClientProof](p)
	if err != nil {
		return hello, nil, err
	}
	if !hmac.Equal(cp.Proof, want) {
		protocol.WriteMsg(rw, &protocol.Error{Code: protocol.CodeAuthFailed,
			Message: "the client's proof does not match: set the same auth.token in hopc and hops"})
		return hello, nil, ErrAuthFailed
	}
	w, refuse := decide(hello)
	if refuse != nil {
		protocol.WriteMsg(rw, refuse)
		return hello, nil, fmt.Errorf("%w: %w", ErrRejected, refuse)
	}
	if err := p.write(w); err != nil {
		return hello, nil, err
	}
	if err := p.write(&protocol.ServerProof{Proof: proof(token, serverLabel, binding, p.th.Sum(nil))}); err != nil {
		return hello, nil, err
	}
	return hello, w, nil
}
