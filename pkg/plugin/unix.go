package plugin

import (
	"context"
	"log/slog"
	"net"

	"github.com/hopproxy/hop/pkg/bridge"
)

// UnixSocket is the unix_domain_socket plugin: it joins every stream to a
// new connection to one unix socket.
type UnixSocket struct {
	path string
	log  *slog.Logger
	t    conns
}

// NewUnixSocket returns the plugin for the socket at path.
func NewUnixSocket(path string, log *slog.Logger) *UnixSocket {
	return &UnixSocket{path: path, log: log}
}

// Serve implements Handler.
func (u *UnixSocket) Serve(conn net.Conn, src string) {
	if !u.t.add(conn) {
		return
	}
	defer u.t.done(conn)
	d := net.Dialer{Timeout: DialTimeout}
	lc, err := d.DialContext(context.Background(), "unix", u.path)
	if err != nil {
		u.log.Warn("unix_domain_socket: cannot connect", "unixPath", u.path, "src", src, "error", err)
		conn.Close()
		return
	}
	if !u.t.add(lc) {
		conn.Close()
		return
	}
	defer u.t.done(lc)
	bridge.Join(conn, lc)
}

// Close implements Handler.
func (u *UnixSocket) Close() error {
	u.t.close()
	return nil
}
