package control

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/protocol"
)

func TestSendRecvClose(t *testing.T) {
	a, b := net.Pipe()
	ca, cb := New(a), New(b)
	if err := ca.Send(context.Background(), &protocol.Ping{Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if !ca.TrySend(&protocol.Ping{Seq: 2}) {
		t.Fatal("TrySend refused on an empty queue")
	}
	for want := uint64(1); want <= 2; want++ {
		m, err := cb.Recv()
		if err != nil || m.(*protocol.Ping).Seq != want {
			t.Fatalf("Recv = %#v, %v", m, err)
		}
	}
	ca.Close()
	ca.Close() // idempotent
	if err := ca.Send(context.Background(), &protocol.Ping{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
	if ca.TrySend(&protocol.Ping{}) {
		t.Fatal("TrySend after Close reported success")
	}
	if _, err := cb.Recv(); err == nil {
		t.Fatal("Recv on a closed peer succeeded")
	}
	cb.Close()
}

// A peer that stops reading fills the queue: TrySend then fails at once
// instead of blocking, and Send honours its context.
func TestFullQueueDoesNotBlock(t *testing.T) {
	a, b := net.Pipe() // nobody reads b: the writer blocks on the first frame
	defer b.Close()
	c := New(a)
	defer c.Close()
	sent := 0
	for c.TrySend(&protocol.Ping{Seq: uint64(sent)}) {
		sent++
		if sent > 10*queueLen {
			t.Fatal("TrySend never reported a full queue")
		}
	}
	// The writer may take one more frame off the queue (and block on it):
	// after that, Send must give up when its context does.
	for try := 0; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := c.Send(ctx, &protocol.Ping{})
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil || try == 2 {
			t.Fatalf("Send on a full queue: %v after %d tries", err, try+1)
		}
	}
}
