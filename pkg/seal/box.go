package seal

import (
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// SealBox seals one message under key with associated data ad. The nonce
// is zero, so a key must seal exactly one box: derive a fresh one for each
// (hop's P2P info boxes use keys from the ISK of their own PAKE exchange).
func SealBox(key, ad, msg []byte) ([]byte, error) {
	a, err := chacha20poly1305.New(key)
	if err != nil {
		return nil, fmt.Errorf("seal: box key: %w", err)
	}
	return a.Seal(nil, make([]byte, chacha20poly1305.NonceSize), msg, ad), nil
}

// OpenBox opens a box that SealBox made; ErrAuth if key, ad or the box
// differ.
func OpenBox(key, ad, box []byte) ([]byte, error) {
	a, err := chacha20poly1305.New(key)
	if err != nil {
		return nil, fmt.Errorf("seal: box key: %w", err)
	}
	if len(box) < chacha20poly1305.Overhead {
		return nil, fmt.Errorf("%w: box of %d bytes", ErrRecord, len(box))
	}
	msg, err := a.Open(nil, make([]byte, chacha20poly1305.NonceSize), box, ad)
	if err != nil {
		return nil, fmt.Errorf("%w: box", ErrAuth)
	}
	return msg, nil
}
