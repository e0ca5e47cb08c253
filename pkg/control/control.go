// Package control carries control messages over the control stream of a
// session: reads happen on the caller's goroutine (Recv), writes go
// through one writer goroutine fed by a bounded queue, so a heartbeat can be
// queued without blocking behind a slow write.
package control

import (
	"context"
	"errors"
	"net"
	"sync"

	"github.com/hopproxy/hop/pkg/protocol"
)

// ErrClosed is returned by Send after the channel has closed.
var ErrClosed = errors.New("control channel closed")

// queueLen bounds the messages waiting for the writer.
const queueLen = 64

// Channel is a control stream with a writer goroutine.
type Channel struct {
	conn net.Conn
	q    chan []byte

	closeOnce sync.Once
	done      chan struct{}
	wg        sync.WaitGroup
	mu        sync.Mutex
	err       error
}

// New starts a Channel on conn. Close it to stop the writer.
func New(conn net.Conn) *Channel {
	c := &Channel{conn: conn, q: make(chan []byte, queueLen), done: make(chan struct{})}
	c.wg.Add(1)
	go c.writeLoop()
	return c
}

func (c *Channel) writeLoop() {
	defer c.wg.Done()
	for {
		select {
		case b := <-c.q:
			if _, err := c.conn.Write(b); err != nil {
				c.fail(err)
				return
			}
		case <-c.done:
			return
		}
	}
}

func (c *Channel) fail(err error) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		close(c.done)
		c.conn.Close()
	})
}

// Send queues m, waiting while the queue is full.
func (c *Channel) Send(ctx context.Context, m protocol.Message) error {
	b, err := protocol.Encode(m)
	if err != nil {
		return err
	}
	select {
	case <-c.done: // checked first: select picks at random among ready cases
		return ErrClosed
	default:
	}
	select {
	case c.q <- b:
		return nil
	case <-c.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TrySend queues m unless the queue is full or the channel closed.
func (c *Channel) TrySend(m protocol.Message) bool {
	b, err := protocol.Encode(m)
	if err != nil {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
	}
	select {
	case c.q <- b:
		return true
	default:
		return false
	}
}

// Recv reads the next message. Call it from one goroutine only.
func (c *Channel) Recv() (protocol.Message, error) { return protocol.ReadMsg(c.conn) }

// Close stops the writer and closes the stream. Queued messages that were
// not yet written are dropped. Safe to call more than once.
func (c *Channel) Close() error {
	c.fail(ErrClosed)
	c.wg.Wait()
	return nil
}

// Err is the write error that closed the channel, if any.
func (c *Channel) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
