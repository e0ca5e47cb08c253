package plugin

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/hopproxy/hop/pkg/bridge"
)

// The socks5 plugin is a SOCKS5 server (RFC 1928) for the CONNECT command,
// with no authentication or, when a username is set, RFC 1929
// username/password. It is written here rather than imported: of the
// known Go libraries, github.com/things-go/go-socks5 is not served by the
// module proxy this project builds from, and github.com/armon/go-socks5
// has had no release or commit since 2016.

// SOCKS5 protocol constants (RFC 1928, RFC 1929).
const (
	socksVersion    = 5
	authVersion     = 1 // RFC 1929 subnegotiation version
	methodNoAuth    = 0x00
	methodUserPass  = 0x02
	methodNoneFits  = 0xff
	cmdConnect      = 0x01
	atypIPv4        = 0x01
	atypDomain      = 0x03
	atypIPv6        = 0x04
	repSucceeded    = 0x00
	repFailure      = 0x01
	repNetUnreach   = 0x03
	repHostUnreach  = 0x04
	repRefused      = 0x05
	repCmdNotSupp   = 0x07
	repAtypNotSupp  = 0x08
	authStatusOK    = 0x00
	authStatusNotOK = 0x01
)

// Errors of the SOCKS5 handshake.
var (
	ErrSOCKSVersion  = errors.New("socks5: not a SOCKS5 client")
	ErrSOCKSMethod   = errors.New("socks5: the client offers no acceptable authentication method")
	ErrSOCKSAuth     = errors.New("socks5: wrong username or password")
	ErrSOCKSCommand  = errors.New("socks5: only CONNECT is supported")
	ErrSOCKSAddrType = errors.New("socks5: unknown address type")
)

// socksRequest is a parsed CONNECT request.
type socksRequest struct {
	host string // IP or domain name
	port uint16
}

func (r socksRequest) addr() string { return net.JoinHostPort(r.host, strconv.Itoa(int(r.port))) }

// socksHandshake reads the client's greeting, authenticates it and reads
// its request, writing the method choice, the authentication status and,
// for a request that is refused, the reply. On success the caller dials
// and writes the reply (writeReply). user == "" accepts clients without
// authentication.
func socksHandshake(rw io.ReadWriter, user, pass string) (socksRequest, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(rw, hdr[:]); err != nil {
		return socksRequest{}, fmt.Errorf("socks5: reading greeting: %w", err)
	}
	if hdr[0] != socksVersion {
		return socksRequest{}, fmt.Errorf("%w (version byte %d)", ErrSOCKSVersion, hdr[0])
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(rw, methods); err != nil {
		return socksRequest{}, fmt.Errorf("socks5: reading methods: %w", err)
	}
	want := byte(methodNoAuth)
	if user != "" {
		want = methodUserPass
	}
	found := false
	for _, m := range methods {
		found = found || m == want
	}
	if !found {
		rw.Write([]byte{socksVersion, methodNoneFits})
		return socksRequest{}, ErrSOCKSMethod
	}
	if _, err := rw.Write([]byte{socksVersion, want}); err != nil {
		return socksRequest{}, err
	}
	if want == methodUserPass {
		if err := socksUserPass(rw, user, pass); err != nil {
			return socksRequest{}, err
		}
	}
	return socksReadRequest(rw)
}

// socksUserPass runs the RFC 1929 subnegotiation.
func socksUserPass(rw io.ReadWriter, user, pass string) error {
	var b [2]byte
	if _, err := io.ReadFull(rw, b[:]); err != nil {
		return fmt.Errorf("socks5: reading username: %w", err)
	}
	if b[0] != authVersion {
		rw.Write([]byte{authVersion, authStatusNotOK})
		return fmt.Errorf("socks5: username/password version %d, want 1", b[0])
	}
	u := make([]byte, b[1])
	if _, err := io.ReadFull(rw, u); err != nil {
		return fmt.Errorf("socks5: reading username: %w", err)
	}
	if _, err := io.ReadFull(rw, b[:1]); err != nil {
		return fmt.Errorf("socks5: reading password: %w", err)
	}
	p := make([]byte, b[0])
	if _, err := io.ReadFull(rw, p); err != nil {
		return fmt.Errorf("socks5: reading password: %w", err)
	}
	okU := subtle.ConstantTimeCompare(u, []byte(user))
	okP := subtle.ConstantTimeCompare(p, []byte(pass))
	if okU&okP != 1 {
		rw.Write([]byte{authVersion, authStatusNotOK})
		return ErrSOCKSAuth
	}
	_, err := rw.Write([]byte{authVersion, authStatusOK})
	return err
}

// socksReadRequest reads VER CMD RSV ATYP DST.ADDR DST.PORT.
func socksReadRequest(rw io.ReadWriter) (socksRequest, error) {
	var h [4]byte
	if _, err := io.ReadFull(rw, h[:]); err != nil {
		return socksRequest{}, fmt.Errorf("socks5: reading request: %w", err)
	}
	if h[0] != socksVersion {
		return socksRequest{}, fmt.Errorf("%w (request version %d)", ErrSOCKSVersion, h[0])
	}
	var req socksRequest
	switch h[3] {
	case atypIPv4, atypIPv6:
		ip := make([]byte, 4)
		if h[3] == atypIPv6 {
			ip = make([]byte, 16)
		}
		if _, err := io.ReadFull(rw, ip); err != nil {
			return socksRequest{}, fmt.Errorf("socks5: reading address: %w", err)
		}
		req.host = net.IP(ip).String()
	case atypDomain:
		var n [1]byte
		if _, err := io.ReadFull(rw, n[:]); err != nil {
			return socksRequest{}, fmt.Errorf("socks5: reading address: %w", err)
		}
		name := make([]byte, n[0])
		if _, err := io.ReadFull(rw, name); err != nil {
			return socksRequest{}, fmt.Errorf("socks5: reading address: %w", err)
		}
		if !validDomain(name) {
			writeReply(rw, repHostUnreach, nil)
			return socksRequest{}, fmt.Errorf("socks5: %q is not a domain name", name)
		}
		req.host = string(name)
	default:
		writeReply(rw, repAtypNotSupp, nil)
		return socksRequest{}, fmt.Errorf("%w %d", ErrSOCKSAddrType, h[3])
	}
	var port [2]byte
	if _, err := io.ReadFull(rw, port[:]); err != nil {
		return socksRequest{}, fmt.Errorf("socks5: reading port: %w", err)
	}
	req.port = uint16(port[0])<<8 | uint16(port[1])
	if h[1] != cmdConnect {
		writeReply(rw, repCmdNotSupp, nil)
		return socksRequest{}, fmt.Errorf("%w (command %d)", ErrSOCKSCommand, h[1])
	}
	return req, nil
}

// validDomain reports whether a requested name is a host name: letters,
// digits, '-', '_' and '.', not empty. Anything else (a ':' or ']', a
// NUL) would not make a host:port to dial.
func validDomain(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// writeReply writes VER REP RSV ATYP BND.ADDR BND.PORT, with bnd's
// address (0.0.0.0:0 when bnd is not a TCP address).
func writeReply(w io.Writer, rep byte, bnd net.Addr) error {
	ip, port := net.IPv4zero.To4(), 0
	if ta, ok := bnd.(*net.TCPAddr); ok {
		ip, port = ta.IP, ta.Port
	}
	b := []byte{socksVersion, rep, 0}
	if ip4 := ip.To4(); ip4 != nil {
		b = append(append(b, atypIPv4), ip4...)
	} else {
		b = append(append(b, atypIPv6), ip.To16()...)
	}
	b = append(b, byte(port>>8), byte(port))
	_, err := w.Write(b)
	return err
}

// replyCode maps a dial error to a SOCKS5 reply.
func replyCode(err error) byte {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return repRefused
	case errors.Is(err, syscall.ENETUNREACH):
		return repNetUnreach
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, os.ErrDeadlineExceeded):
		return repHostUnreach
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return repHostUnreach
	}
	return repFailure
}

// SOCKS5 is the socks5 plugin.
type SOCKS5 struct {
	user, pass string
	dial       Dialer
	log        *slog.Logger
	t          conns
	ctx        context.Context
	cancel     context.CancelFunc
}

// NewSOCKS5 returns a SOCKS5 server that requires user and pass (RFC
// 1929), or no authentication when user is empty, and connects to the
// requested targets with d.
func NewSOCKS5(user, pass string, d Dialer, log *slog.Logger) *SOCKS5 {
	ctx, cancel := context.WithCancel(context.Background())
	return &SOCKS5{user: user, pass: pass, dial: d, log: log, ctx: ctx, cancel: cancel}
}

// Serve implements Handler.
func (s *SOCKS5) Serve(conn net.Conn, src string) {
	if !s.t.add(conn) {
		return
	}
	defer s.t.done(conn)
	conn.SetDeadline(time.Now().Add(HandshakeTimeout))
	req, err := socksHandshake(conn, s.user, s.pass)
	if err != nil {
		s.log.Info("socks5: request refused", "src", src, "error", err)
		conn.Close()
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, DialTimeout)
	tc, err := s.dial.DialContext(ctx, "tcp", req.addr())
	cancel()
	if err != nil {
		s.log.Info("socks5: cannot connect", "src", src, "target", req.addr(), "error", err)
		writeReply(conn, replyCode(err), nil)
		conn.Close()
		return
	}
	if !s.t.add(tc) {
		conn.Close()
		return
	}
	defer s.t.done(tc)
	if err := writeReply(conn, repSucceeded, tc.LocalAddr()); err != nil {
		conn.Close()
		tc.Close()
		return
	}
	conn.SetDeadline(time.Time{})
	bridge.Join(conn, tc)
}

// Close implements Handler.
func (s *SOCKS5) Close() error {
	s.cancel()
	s.t.close()
	return nil
}
