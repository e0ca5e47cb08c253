package server

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hopproxy/hop/pkg/auth"
	"github.com/hopproxy/hop/pkg/logging"
	"github.com/hopproxy/hop/pkg/protocol"
	"github.com/hopproxy/hop/pkg/transport"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logLines) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logLines) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), s)
}

func (b *logLines) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fromConn is one end of a pipe that claims to come from remote.
type fromConn struct {
	net.Conn
	remote net.Addr
}

func (c fromConn) RemoteAddr() net.Addr { return c.remote }

// TestJunkConnectionsLogOnce is the log flood of the audit in small: 300
// connections from one address that send junk instead of a TLS hello
// gave 300 lines; now they give one, and one summary with the count.
func TestJunkConnectionsLogOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := testServer(t)
		var out logLines
		s.log = slog.New(slog.NewTextHandler(&out, nil))
		const n = 300
		for i := range n {
			srv, cli := net.Pipe()
			go func() {
				cli.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
				cli.Close()
			}()
			s.handle(t.Context(), fromConn{srv, &net.TCPAddr{IP: net.IPv4(198, 51, 100, 7), Port: 10000 + i}})
		}
		if got := out.count(`msg="TLS handshake failed`); got != 1 {
			t.Fatalf("%d lines for %d junk connections:\n%s", got, n, out.String())
		}
		time.Sleep(logging.DefaultLimitInterval)
		synctest.Wait()
		want := fmt.Sprintf("TLS handshake failed (%d more like this from 198.51.100.7 in the last 10s)", n-1)
		if out.count(`msg="TLS handshake failed`) != 2 || out.count(want) != 1 {
			t.Fatalf("after the window, want one summary %q:\n%s", want, out.String())
		}
	})
}

// TestRejectedLoginsLogOnce: a peer that completes TLS and keeps trying a
// wrong token gets one "login rejected" line and a summary.
func TestRejectedLoginsLogOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := testServer(t)
		var out logLines
		s.log = slog.New(slog.NewTextHandler(&out, nil))
		const n = 20
		for i := range n {
			srv, cli := net.Pipe()
			done := make(chan error, 1)
			go func() {
				defer cli.Close()
				tc := tls.Client(cli, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
				if err := tc.Handshake(); err != nil {
					done <- err
					return
				}
				b, err := transport.Binding(tc)
				if err != nil {
					done <- err
					return
				}
				_, err = auth.Client(tc, "wrong-token", b, auth.NewIdentity(), protocol.ClientHello{ClientID: "guess", HeartbeatIntervalMs: 10000})
				done <- err
			}()
			s.handle(t.Context(), fromConn{srv, &net.TCPAddr{IP: net.IPv4(203, 0, 113, 9), Port: 20000 + i}})
			if err := <-done; !errors.Is(err, auth.ErrAuthFailed) {
				t.Fatalf("login %d with a wrong token: %v", i, err)
			}
		}
		if got := testutil.ToFloat64(s.metrics.LoginsRefused.WithLabelValues("auth_failed")); got != n {
			t.Errorf("hop_logins_refused_total{reason=auth_failed} = %v after %d wrong tokens", got, n)
		}
		if got := out.count(`msg="login rejected`); got != 1 {
			t.Fatalf("%d lines for %d rejected logins:\n%s", got, n, out.String())
		}
		time.Sleep(logging.DefaultLimitInterval)
		synctest.Wait()
		if want := fmt.Sprintf("login rejected (%d more like this from 203.0.113.9 in the last 10s)", n-1); out.count(want) != 1 {
			t.Fatalf("want one summary %q:\n%s", want, out.String())
		}
	})
}

func bindErr(errno syscall.Errno) error {
	return &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", errno)}
}

// TestBindRefusal: the code hopc gets tells a lack of descriptors
// (temporary, it retries) from a port in use or not allowed (the user
// fixes the config); before, all but EADDRINUSE were port_not_allowed.
func TestBindRefusal(t *testing.T) {
	for _, tt := range []struct {
		port int
		err  error
		code string
		msg  string
	}{
		{8080, bindErr(syscall.EADDRINUSE), protocol.CodePortInUse, "remotePort 8080 is already in use"},
		{0, bindErr(syscall.EADDRINUSE), protocol.CodePortInUse, "no free port"},
		{80, bindErr(syscall.EACCES), protocol.CodePortNotAllowed, "permission denied; ports below 1024 need privileges"},
		{80, bindErr(syscall.EPERM), protocol.CodePortNotAllowed, "need privileges"},
		{8080, bindErr(syscall.EMFILE), protocol.CodeTemporary, "out of file descriptors"},
		{8080, bindErr(syscall.ENFILE), protocol.CodeTemporary, "hopc retries"},
		{8080, bindErr(syscall.ENOBUFS), protocol.CodeTemporary, "out of socket memory"},
		{8080, bindErr(syscall.ENOMEM), protocol.CodeTemporary, "out of socket memory"},
		{8080, bindErr(syscall.EADDRNOTAVAIL), protocol.CodePortNotAllowed, "cannot open remotePort 8080 on the server: listen tcp: bind: cannot assign"},
		{0, errors.New("no port in allowPorts is free"), protocol.CodePortNotAllowed, "cannot open a free port"},
	} {
		r := bindRefusal("web", tt.port, tt.err)
		if r.Name != "web" || r.Code != tt.code || !strings.Contains(r.Error, tt.msg) {
			t.Errorf("%d, %v: %s %q; want %s with %q", tt.port, tt.err, r.Code, r.Error, tt.code, tt.msg)
		}
	}
}
