package mux

import (
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

// heapMB is the live heap after a full collection, in MiB.
func heapMB() float64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

// attacker is a raw yamux client: it opens streams and writes into them
// without ever reading, closing or acknowledging anything.
func attacker(t *testing.T, c net.Conn) *yamux.Session {
	t.Helper()
	yc := yamux.DefaultConfig()
	yc.EnableKeepAlive = false
	yc.LogOutput = io.Discard
	yc.AcceptBacklog = 4096 // its own limit on un-acknowledged opens
	y, err := yamux.Client(c, yc)
	if err != nil {
		t.Fatal(err)
	}
	return y
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestJunkStreamsFreed reproduces the audit's attack: a peer opens 1,000
// streams, fills each with 256 KiB of junk (its whole initial window) and
// never closes them; the application reads a little of each, rejects it
// and closes it. The junk must not stay buffered (before: about 250 MB
// live for StreamCloseTimeout, then 5 minutes), and once the session has
// ended its memory must be back near the baseline.
func TestJunkStreamsFreed(t *testing.T) {
	const streams, junk = 1000, 256 << 10
	c, s := tcpPair(t)
	cfg := DefaultConfig()
	cfg.KeepaliveInterval = 0
	base := heapMB()

	srv, err := Server(s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	var appWG sync.WaitGroup
	appWG.Add(1)
	go func() { // the application: read a header, reject, close
		defer appWG.Done()
		for {
			st, err := srv.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			var hdr [16]byte
			io.ReadFull(st, hdr[:])
			st.Close()
		}
	}()

	y := attacker(t, c)
	payload := make([]byte, junk)
	var wg sync.WaitGroup
	var sent, refused atomic.Int64
	for range streams {
		st, err := y.OpenStream()
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.SetWriteDeadline(time.Now().Add(90 * time.Second))
			n, err := st.Write(payload)
			sent.Add(int64(n))
			if err == nil {
				// The junk fits the initial window, so the write can
				// end before a reset arrives: the stream's next read
				// tells a reset (ErrConnectionReset) from the
				// application's close (EOF).
				st.SetReadDeadline(time.Now().Add(90 * time.Second))
				_, err = st.Read(make([]byte, 1))
			}
			if errors.Is(err, yamux.ErrConnectionReset) {
				// the accept backlog was full: a slow application
				// (a loaded machine) gets the rest reset, by design
				refused.Add(1)
			}
		}()
	}
	var peak float64
	stopSample := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stopSample:
				return
			case <-time.After(50 * time.Millisecond):
				peak = max(peak, heapMB())
			}
		}
	}()
	wg.Wait()
	waitFor(t, 90*time.Second, "a stream was neither accepted nor refused", func() bool { return accepted.Load()+refused.Load() == streams })
	// Every byte the attacker sent was read off the connection; nothing of it
	// may stay: the closed streams discard what arrives.
	waitFor(t, 20*time.Second, "junk still buffered", func() bool { return heapMB() < base+32 })
	close(stopSample)
	<-sampled
	during := heapMB()
	t.Logf("attack: %d streams (%d reset at the full backlog), %.0f MiB sent; heap baseline %.1f MiB, peak %.1f MiB, after the streams closed %.1f MiB",
		streams, refused.Load(), float64(sent.Load())/(1<<20), base, peak, during)
	if got := srv.AcceptedOpen(); got > cfg.MaxStreams {
		t.Fatalf("%d accepted streams open, cap %d", got, cfg.MaxStreams)
	}

	y.Close()
	c.Close()
	srv.Close()
	appWG.Wait()
	waitFor(t, 20*time.Second, "session memory not freed after the session ended", func() bool { return heapMB() < base+8 })
	t.Logf("after the session ended: %.1f MiB", heapMB())
	runtime.KeepAlive(srv) // the Session itself stays reachable: what it holds must not
}

// TestStreamCap: a peer opening 100 streams into an application that holds
// them gets MaxStreams accepted, AcceptBacklog queued, and the rest reset;
// a slot comes back once a held stream's close has finished.
func TestStreamCap(t *testing.T) {
	c, s := tcpPair(t)
	cfg := DefaultConfig()
	cfg.KeepaliveInterval = 0
	cfg.MaxStreams = 8
	cfg.StreamCloseTimeout = 200 * time.Millisecond
	srv, err := Server(s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	held := make(chan net.Conn, 100)
	go func() {
		for {
			st, err := srv.Accept()
			if err != nil {
				return
			}
			held <- st
		}
	}()
	y := attacker(t, c)
	defer y.Close()
	var reset atomic.Int64
	var wg sync.WaitGroup
	for i := range 100 {
		if i == cfg.MaxStreams {
			// The application takes the first MaxStreams before the rest
			// arrive; otherwise a loaded machine's slower acceptor leaves
			// more in the backlog when SYNs come and more get reset.
			waitFor(t, 20*time.Second, "the application did not get the first streams", func() bool { return len(held) == cfg.MaxStreams })
		}
		st, err := y.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.Write([]byte("x"))
			st.SetReadDeadline(time.Now().Add(20 * time.Second))
			if _, err := st.Read(make([]byte, 1)); errors.Is(err, yamux.ErrConnectionReset) {
				reset.Add(1)
			}
		}()
	}
	pending := cfg.backlog()
	waitFor(t, 20*time.Second, "streams beyond the cap and the backlog were not reset", func() bool {
		return reset.Load() == int64(100-cfg.MaxStreams-pending)
	})
	if n := len(held); n != cfg.MaxStreams {
		t.Fatalf("application got %d streams, cap %d", n, cfg.MaxStreams)
	}
	if got := srv.AcceptedOpen(); got != cfg.MaxStreams {
		t.Fatalf("AcceptedOpen %d", got)
	}
	// Closing one frees its slot once the peer's FIN or the close timeout
	// comes: then one queued stream is accepted.
	(<-held).Close()
	waitFor(t, 10*time.Second, "no stream accepted after a slot was freed", func() bool { return len(held) == cfg.MaxStreams })
	y.Close()
	wg.Wait()
}

// TestCloseIsFull: Close stops reading, CloseWrite keeps it.
func TestCloseIsFull(t *testing.T) {
	cs, ss, _ := sessions(t, tcpPair, testConf, testConf)
	got := make(chan net.Conn, 1)
	go func() {
		st, err := ss.Accept()
		if err == nil {
			got <- st
		}
	}()
	st, err := cs.Open()
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte("a"))
	peer := <-got
	st.(interface{ CloseWrite() error }).CloseWrite()
	b, err := io.ReadAll(peer) // the FIN arrives after "a"
	if err != nil || string(b) != "a" {
		t.Fatalf("%q %v", b, err)
	}
	peer.Write([]byte("still open"))
	buf := make([]byte, 32)
	n, _ := io.ReadAtLeast(st, buf, len("still open"))
	if string(buf[:n]) != "still open" {
		t.Fatalf("after CloseWrite read %q", buf[:n])
	}
	peer.Close()
	st.Close()
	st.Close() // idempotent
}

// TestWindowSmallUntilFirstRead: an accepted stream that the application
// has not read yet gives the peer only yamux's initial 256 KiB window, not
// MaxStreamWindow (upstream yamux grants the full window at accept; hop's
// copy in third_party/yamux waits for the first Read). After one Read the
// window grows to MaxStreamWindow.
func TestWindowSmallUntilFirstRead(t *testing.T) {
	c, s := tcpPair(t)
	cfg := DefaultConfig()
	cfg.KeepaliveInterval = 0
	srv, err := Server(s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	y := attacker(t, c)
	defer y.Close()
	st, err := y.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	// written pushes as much as the window lets through before writes stall.
	written := func() int {
		chunk := make([]byte, 64<<10)
		n := 0
		for {
			st.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
			k, err := st.Write(chunk)
			n += k
			if err != nil {
				return n
			}
		}
	}
	if _, err := st.Write([]byte("x")); err != nil { // the SYN, so that Accept gets it
		t.Fatal(err)
	}
	in, err := srv.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	const initial = 256 << 10
	if n := 1 + written(); n > initial {
		t.Fatalf("before the first read the peer could send %d bytes into the stream, more than the initial window %d", n, initial)
	} else {
		t.Logf("before the first read: %d bytes", n)
	}
	buf := make([]byte, 1)
	if _, err := in.Read(buf); err != nil {
		t.Fatal(err)
	}
	// The window is now MaxStreamWindow, less what is still buffered.
	if n := written(); n < int(cfg.MaxStreamWindow)-2*initial {
		t.Fatalf("after the first read the peer could send only %d more bytes; the window should have grown to %d", n, cfg.MaxStreamWindow)
	} else {
		t.Logf("after the first read: %d more bytes", n)
	}
}
