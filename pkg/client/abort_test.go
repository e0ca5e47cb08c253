package client_test

import (
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// A user who closes a download in the middle stops it at the local
// service too. Before, hops closed its end of the stream and discarded
// what hopc still sent until the stream close timeout (60 s), so hopc kept
// reading the service and sending: 132 MB in 3 s after the user had gone.
// Now the relay resets the stream, hopc's write fails, and it closes its
// connection to the service.
func TestUserAbortStopsTheLocalService(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var sent atomic.Int64
	ended := make(chan error, 1)
	go func() { // an endless download
		c, err := l.Accept()
		if err != nil {
			ended <- err
			return
		}
		defer c.Close()
		buf := make([]byte, 32<<10)
		for {
			c.SetWriteDeadline(time.Now().Add(90 * time.Second))
			n, err := c.Write(buf)
			sent.Add(int64(n))
			if err != nil {
				ended <- err
				return
			}
		}
	}()
	port, remote := freePort(t), freePort(t)
	var slog, clog logBuf
	runServer(t, serverConfig(port), slog.logger())
	runClient(t, clientConfig(port, tcpProxy("dl", l.Addr().(*net.TCPAddr).Port, remote)), clog.logger())
	var user net.Conn
	eventually(t, 10*time.Second, "the proxy's port", func() bool {
		user, err = net.Dial("tcp", addr(remote))
		return err == nil
	})
	if _, err := io.ReadFull(user, make([]byte, 1<<20)); err != nil {
		t.Fatalf("download: %v", err)
	}
	user.Close()
	closedAt, atClose := time.Now(), sent.Load()
	select {
	case err := <-ended:
		t.Logf("the service's connection ended %v after the user left (%v); %.1f MB sent after", time.Since(closedAt).Round(time.Millisecond), err,
			float64(sent.Load()-atClose)/1e6)
	case <-time.After(20 * time.Second):
		t.Fatalf("the local service still sends 20 s after the user closed (%.0f MB since)", float64(sent.Load()-atClose)/1e6)
	}
}
