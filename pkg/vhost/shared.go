package vhost

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"time"

	"github.com/hopproxy/hop/pkg/sniff"
	"github.com/hopproxy/hop/pkg/vhost/sni"
)

// The queues of a port shared by hop's control listener and vhost
// servers (see Shared.Classify).
const (
	QueueControl = iota
	QueueHTTP
	QueueHTTPS
	QueueTCPMux
	NumQueues
)

// maxMethodBytes is how much of a plaintext connection Classify reads at
// most to find the method of its request line ("CONNECT" and a space).
const maxMethodBytes = 8

// Shared says which vhost servers share a port with hop's control
// listener (bindPort).
type Shared struct {
	// HTTPS, when set, takes the TLS connections whose server name it
	// routes.
	HTTPS *HTTPSServer
	// HTTP takes plaintext connections, other than CONNECT requests when
	// TCPMux is set.
	HTTP bool
	// TCPMux takes plaintext CONNECT requests (and, without HTTP, every
	// plaintext connection, which it answers with an HTTP error).
	TCPMux bool
	// ControlALPN, when set, is the ALPN protocol of the control
	// connections (hopc's): a ClientHello that offers it goes to
	// QueueControl whatever its server name.
	ControlALPN string
}

// Classify is a sniff.Classify for the shared port. By the first byte:
//   - 0x16, a TLS handshake: its ClientHello is read (at most
//     sni.MaxWireBytes) and, when HTTPS routes its server name and it
//     does not offer ControlALPN, the connection goes to QueueHTTPS; any
//     other TLS (hop's own control connections, whose server name is
//     whatever hopc sends, often none) to QueueControl;
//   - a STUN message over TCP (first two bits 0), which hop's control
//     port answers: QueueControl;
//   - anything else is taken for plaintext HTTP: up to maxMethodBytes
//     are read to find the method; CONNECT goes to QueueTCPMux when
//     TCPMux is set, the rest to QueueHTTP when HTTP is set, else to
//     the one that is; with neither, QueueControl (whose TLS handshake
//     then fails cleanly).
//
// A control client that does not offer ControlALPN (an older hopc)
// reaches QueueControl only when its server name is not a domain of an
// https proxy.
func (sh Shared) Classify(c net.Conn, deadline time.Time) (int, []byte, error) {
	var first [1]byte
	if _, err := io.ReadFull(c, first[:]); err != nil {
		return 0, nil, fmt.Errorf("no first byte: %w", err)
	}
	switch b := first[0]; {
	case b == 0x16:
		if sh.HTTPS == nil {
			return QueueControl, first[:], nil
		}
		name, prefix, err := sni.Read(sniff.NewConn(c, first[:]), deadline)
		switch {
		case err == nil:
			if _, ok := sh.HTTPS.routes.Lookup(name, "/", ""); ok && !sh.offersControl(prefix) {
				return QueueHTTPS, prefix, nil
			}
			return QueueControl, prefix, nil
		case errors.Is(err, sni.ErrNoServerName), errors.Is(err, sni.ErrNotTLS), errors.Is(err, sni.ErrMalformed), errors.Is(err, sni.ErrTooLarge):
			// Not for an https proxy; the control listener's TLS
			// handshake answers it (and logs a bad one).
			return QueueControl, prefix, nil
		}
		return 0, nil, fmt.Errorf("reading a TLS ClientHello: %w", err)
	case b < 0x40:
		return QueueControl, first[:], nil
	}
	if !sh.HTTP && !sh.TCPMux {
		return QueueControl, first[:], nil
	}
	buf := make([]byte, 1, 64)
	buf[0] = first[0]
	for len(buf) < maxMethodBytes && bytes.IndexByte(buf, ' ') < 0 {
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, io.EOF) {
				return 0, nil, fmt.Errorf("plaintext connection sent %d bytes and no method: %w", len(buf), err)
			}
			return 0, nil, err
		}
	}
	isConnect := bytes.HasPrefix(buf, []byte("CONNECT "))
	switch {
	case isConnect && sh.TCPMux, !sh.HTTP:
		return QueueTCPMux, buf, nil
	default:
		return QueueHTTP, buf, nil
	}
}

// offersControl reports whether the ClientHello in hello offers
// ControlALPN. It lets crypto/tls parse the hello: a server handshake on
// the bytes read, stopped as soon as the hello is parsed.
func (sh Shared) offersControl(hello []byte) bool {
	if sh.ControlALPN == "" {
		return false
	}
	errStop := errors.New("stop")
	offered := false
	tc := tls.Server(&helloConn{r: bytes.NewReader(hello)}, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			offered = slices.Contains(h.SupportedProtos, sh.ControlALPN)
			return nil, errStop
		},
	})
	tc.Handshake() // fails: errStop, or a hello crypto/tls refuses
	return offered
}

// helloConn feeds recorded bytes to a crypto/tls server and discards
// what it writes.
type helloConn struct{ r *bytes.Reader }

func (c *helloConn) Read(b []byte) (int, error)       { return c.r.Read(b) }
func (c *helloConn) Write(b []byte) (int, error)      { return len(b), nil }
func (c *helloConn) Close() error                     { return nil }
func (c *helloConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *helloConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *helloConn) SetDeadline(time.Time) error      { return nil }
func (c *helloConn) SetReadDeadline(time.Time) error  { return nil }
func (c *helloConn) SetWriteDeadline(time.Time) error { return nil }
