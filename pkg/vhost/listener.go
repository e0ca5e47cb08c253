package vhost

import (
	"context"
	"log/slog"
	"net"
	"sync"

	"github.com/hopproxy/hop/pkg/acceptloop"
)

// chanListener is a net.Listener fed by acceptloop.Serve on a real
// listener, so that net/http's Server gets connections from the same
// accept loop as every other listener of hop (a failed accept waited out
// and logged, never the end of the port).
type chanListener struct {
	ln   net.Listener
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

func newChanListener(ln net.Listener, log *slog.Logger) *chanListener {
	l := &chanListener{ln: ln, ch: make(chan net.Conn), done: make(chan struct{})}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		acceptloop.Serve(context.Background(), ln, func(c net.Conn) {
			select {
			case l.ch <- c:
			case <-l.done:
				c.Close()
			}
		}, acceptloop.Options{Log: log})
	}()
	return l
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close closes the real listener and waits for its accept loop.
func (l *chanListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.ln.Close()
	})
	l.wg.Wait()
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.ln.Addr() }
