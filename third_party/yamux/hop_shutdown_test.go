package yamux

import (
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"
)

// hop: a Read or Write blocked when the session shuts down returns at once
// instead of spinning until Session.Close reaches the stream's forceClose.
// The test holds streamLock, so Close stops right before the forceClose
// loop: upstream's Read and Write then never return (they spin), hop's
// return EOF and ErrSessionShutdown.
func TestHopBlockedReadWriteReturnAtShutdown(t *testing.T) {
	client, server := testClientServer(t)
	cs, err := client.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	ss, err := server.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(ss, buf); err != nil {
		t.Fatal(err)
	}
	// A writer with no send window left: the client never reads.
	atomicZeroWindow(ss)

	readDone := make(chan error, 1)
	go func() { _, err := ss.Read(buf); readDone <- err }()
	writeDone := make(chan error, 1)
	go func() { _, err := ss.Write([]byte("blocked")); writeDone <- err }()

	server.streamLock.Lock()
	closed := make(chan struct{})
	go func() { server.Close(); close(closed) }()
	defer func() { server.streamLock.Unlock(); <-closed }()

	for _, w := range []struct {
		what string
		ch   chan error
		want error
	}{{"Read", readDone, io.EOF}, {"Write", writeDone, ErrSessionShutdown}} {
		select {
		case err := <-w.ch:
			if !errors.Is(err, w.want) {
				t.Errorf("%s after shutdown: %v, want %v", w.what, err, w.want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s still blocked (spinning) 10 s after the session shut down", w.what)
		}
	}
}

func atomicZeroWindow(s *Stream) { atomic.StoreUint32(&s.sendWindow, 0) }
