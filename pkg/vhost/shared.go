package vhost

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
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
}

// Classify is a sniff.Classify for the shared port. By the first byte:
//   - 0x16, a TLS handshake: its ClientHello is read (at most
//     sni.MaxWireBytes) and, when HTTPS routes its server name, the
//     connection goes to QueueHTTPS; any other TLS (hop's own control
//     connections, whose server name is whatever hopc sends, often none)
//     to QueueControl;
//   - a STUN message over TCP (first two bits 0), which hop's control
//     port answers: QueueControl;
//   - anything else is taken for plaintext HTTP: up to maxMethodBytes
//     are read to find the method; CONNECT goes to QueueTCPMux when
//     TCPMux is set, the rest to QueueHTTP when HTTP is set, else to
//     the one that is; with neither, QueueControl (whose TLS handshake
//     then fails cleanly).
//
// Hop's control connections thus win over https proxies only when their
// server name is not a domain of one: do not give an https proxy the name
// hopc dials hops by.
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
			if _, ok := sh.HTTPS.routes.Lookup(name, "/", ""); ok {
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
