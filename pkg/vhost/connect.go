package vhost

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
)

// MaxConnectHeadBytes caps the head of an HTTP CONNECT request (request
// line and headers, with the blank line) on the tcpmux port.
const MaxConnectHeadBytes = 16 << 10

// Errors of ParseConnect, wrapped with detail. Each has its HTTP status
// on the tcpmux port (see connectStatus).
var (
	// ErrConnectMalformed: the head is not an HTTP/1 request (400).
	ErrConnectMalformed = errors.New("malformed HTTP CONNECT request")
	// ErrConnectMethod: a well-formed request of another method (405).
	ErrConnectMethod = errors.New("not an HTTP CONNECT request")
	// ErrConnectTooLarge: no end of the head within MaxConnectHeadBytes
	// (431).
	ErrConnectTooLarge = errors.New("HTTP CONNECT request head too large")
	// errConnectShort: more bytes are needed (internal to the reader).
	errConnectShort = errors.New("short")
)

// ConnectRequest is what routing needs of an HTTP CONNECT request head.
type ConnectRequest struct {
	// Host is the host of the request target (authority form,
	// "host:port"), lower case, without port or trailing dot.
	Host string
	// Target is the request target as sent ("host:port").
	Target string
	// User and Password are from a Proxy-Authorization: Basic header;
	// HasAuth tells whether one was sent and decoded.
	User, Password string
	HasAuth        bool
}

// ParseConnect parses the HTTP CONNECT request head at the start of b and
// returns it and the length of the head (through its blank line); bytes
// after it belong to the tunnel. It accepts CRLF and bare LF line ends,
// as net/http does. An error wraps ErrConnectMalformed, ErrConnectMethod
// or ErrConnectTooLarge; for a b that is a proper prefix of a head within
// the limit, an internal "short" error the reader waits on.
func ParseConnect(b []byte) (ConnectRequest, int, error) {
	var req ConnectRequest
	end := headEnd(b)
	if end < 0 {
		if len(b) >= MaxConnectHeadBytes {
			return req, 0, fmt.Errorf("%w: no blank line within %d bytes", ErrConnectTooLarge, MaxConnectHeadBytes)
		}
		// Reject a bad request line before the head is complete, so that
		// a client that sent junk is answered at once.
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			if _, _, err := requestLine(b[:i]); err != nil {
				return req, 0, err
			}
		} else if err := methodPrefix(b); err != nil {
			return req, 0, err
		}
		return req, 0, errConnectShort
	}
	if end > MaxConnectHeadBytes {
		return req, 0, fmt.Errorf("%w: %d bytes", ErrConnectTooLarge, end)
	}
	lines := strings.Split(string(b[:end]), "\n")
	for i := range lines {
		lines[i] = strings.TrimSuffix(lines[i], "\r")
	}
	method, target, err := requestLine([]byte(lines[0]))
	if err != nil {
		return req, 0, err
	}
	for _, l := range lines[1:] {
		if l == "" {
			break
		}
		name, value, ok := strings.Cut(l, ":")
		if !ok || name == "" || !isToken(name) {
			return req, 0, fmt.Errorf("%w: header line %q", ErrConnectMalformed, clip(l))
		}
		if strings.ContainsFunc(value, func(c rune) bool { return c < 0x20 && c != '\t' || c == 0x7f }) {
			return req, 0, fmt.Errorf("%w: control character in header %q", ErrConnectMalformed, clip(name))
		}
		if strings.EqualFold(name, "Proxy-Authorization") && !req.HasAuth {
			req.User, req.Password, req.HasAuth = parseBasic(strings.TrimSpace(value))
		}
	}
	if method != "CONNECT" {
		return req, 0, fmt.Errorf("%w: method %q", ErrConnectMethod, clip(method))
	}
	host, port, err := net.SplitHostPort(target)
	if err != nil || host == "" || port == "" || strings.ContainsAny(target, "/?#@") {
		return req, 0, fmt.Errorf("%w: CONNECT target %q is not host:port", ErrConnectMalformed, clip(target))
	}
	req.Target = target
	req.Host = normalizeHost(host)
	if req.Host == "" {
		return ConnectRequest{}, 0, fmt.Errorf("%w: CONNECT target %q has no host", ErrConnectMalformed, clip(target))
	}
	return req, end, nil
}

// headEnd returns the length of the head through its blank line, or -1.
func headEnd(b []byte) int {
	for i := 0; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		switch {
		case i+1 < len(b) && b[i+1] == '\n':
			return i + 2
		case i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n':
			return i + 3
		}
	}
	return -1
}

// requestLine splits "METHOD SP target SP HTTP/1.x" (a trailing CR is
// ignored).
func requestLine(l []byte) (method, target string, err error) {
	s := strings.TrimSuffix(string(l), "\r")
	parts := strings.Split(s, " ")
	if len(parts) != 3 || !isToken(parts[0]) || parts[1] == "" {
		return "", "", fmt.Errorf("%w: request line %q", ErrConnectMalformed, clip(s))
	}
	if parts[2] != "HTTP/1.1" && parts[2] != "HTTP/1.0" {
		return "", "", fmt.Errorf("%w: version %q, want HTTP/1.1 or HTTP/1.0", ErrConnectMalformed, clip(parts[2]))
	}
	for _, c := range []byte(parts[1]) {
		if c <= ' ' || c == 0x7f {
			return "", "", fmt.Errorf("%w: control character in the request target", ErrConnectMalformed)
		}
	}
	return parts[0], parts[1], nil
}

// methodPrefix rejects the start of a request line that cannot become
// one: a method of non-token bytes, or too long.
func methodPrefix(b []byte) error {
	m, _, _ := bytes.Cut(b, []byte(" "))
	if len(m) > 32 {
		return fmt.Errorf("%w: no method in the first %d bytes", ErrConnectMalformed, len(m))
	}
	if len(m) > 0 && !isToken(strings.TrimSuffix(string(m), "\r")) {
		return fmt.Errorf("%w: request line starts with %q", ErrConnectMalformed, clip(string(m)))
	}
	return nil
}

// isToken reports an RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// parseBasic decodes "Basic base64(user:password)".
func parseBasic(v string) (user, pass string, ok bool) {
	scheme, cred, found := strings.Cut(v, " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return "", "", false
	}
	user, pass, ok = strings.Cut(string(raw), ":")
	return user, pass, ok
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
