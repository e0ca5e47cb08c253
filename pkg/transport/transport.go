// Package transport holds what sits under the control session: TCP dialing
// and listening with kernel keepalive settings, the TLS configurations of
// hops and hopc (a generated self-signed certificate when none is
// configured, optional CA or fingerprint pinning) and the TLS channel
// binding used by package auth (its login PAKE is bound to it).
package transport

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/hopproxy/hop/pkg/auth"
)

// ErrCertPin: the server's certificate does not match the configured pin.
var ErrCertPin = errors.New("server certificate does not match transport.tls.certSHA256")

// KeepAlive configures TCP keepalive probes; Idle == 0 switches them off.
type KeepAlive struct {
	Idle     time.Duration
	Interval time.Duration
	Count    int
}

func (k KeepAlive) config() net.KeepAliveConfig {
	if k.Idle <= 0 {
		return net.KeepAliveConfig{Enable: false, Idle: -1, Interval: -1, Count: -1}
	}
	return net.KeepAliveConfig{Enable: true, Idle: k.Idle, Interval: k.Interval, Count: k.Count}
}

func (k KeepAlive) period() time.Duration {
	if k.Idle <= 0 {
		return -1 // disabled
	}
	return k.Idle
}

// Listen opens a TCP listener whose accepted connections use ka. Its
// connections, like Dial's, gather the TLS records of one mux write into
// one syscall (see package mux).
func Listen(ctx context.Context, addr string, ka KeepAlive) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: ka.period(), KeepAliveConfig: ka.config(), Control: control}
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return coalescingListener{ln}, nil
}

// Dial opens a TCP connection with ka from the local IP address local
// ("": the system chooses), giving up after timeout.
func Dial(ctx context.Context, addr, local string, timeout time.Duration, ka KeepAlive) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout, KeepAlive: ka.period(), KeepAliveConfig: ka.config(), Control: control}
	if local != "" {
		a, err := netip.ParseAddr(local)
		if err != nil {
			return nil, fmt.Errorf("local address: %w", err)
		}
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, 0))
	}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return coalescing(c), nil
}

// ALPN is the application protocol hopc offers in its ClientHello (see
// ClientTLS).
const ALPN = "hop"

// Binding returns the channel binding of an established TLS connection.
func Binding(c *tls.Conn) ([]byte, error) {
	cs := c.ConnectionState()
	return cs.ExportKeyingMaterial(auth.BindingLabel, nil, 32)
}

// Fingerprint is the lowercase hex SHA-256 of a DER certificate.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// ServerTLS returns the server's TLS config and the SHA-256 fingerprint of
// its certificate. With no certFile it generates a self-signed one.
func ServerTLS(certFile, keyFile string) (*tls.Config, string, error) {
	var cert tls.Certificate
	var err error
	if certFile != "" {
		cert, err = tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, "", fmt.Errorf("load transport.tls.certFile %s / keyFile %s: %w", certFile, keyFile, err)
		}
	} else {
		cert, err = selfSigned()
		if err != nil {
			return nil, "", err
		}
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS13,
	}, Fingerprint(cert.Certificate[0]), nil
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "hops"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"hops"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// ClientTLS returns the client's TLS config. Without caFile and pin it
// does not verify the server's certificate: login security comes from the
// channel-bound PAKE of package auth, which gives an impostor one online
// guess of the token per connection and nothing to test offline (but pin
// or verify the certificate to keep impostors out altogether). caFile verifies the chain and
// serverName; pin (lowercase hex SHA-256, no colons) requires that exact
// leaf certificate.
//
// The client offers the ALPN protocol ALPN, by which hops tells its
// control connections from TLS for an https proxy on a shared bindPort
// even when the server name is a domain of one (hops does not select
// it: the handshake goes on without ALPN).
func ClientTLS(serverName, caFile, pin string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS13, NextProtos: []string{ALPN}}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read transport.tls.trustedCaFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("transport.tls.trustedCaFile %s holds no PEM certificate", caFile)
		}
		cfg.RootCAs = pool
	} else {
		cfg.InsecureSkipVerify = true
	}
	if pin != "" {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return ErrCertPin
			}
			if got := Fingerprint(cs.PeerCertificates[0].Raw); got != pin {
				return fmt.Errorf("%w: server presented %s, pinned %s", ErrCertPin, got, pin)
			}
			return nil
		}
	}
	return cfg, nil
}
