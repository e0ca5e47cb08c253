package mux

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/transport"
)

// connPair makes a connected pair of one kind.
type connPair func(t *testing.T) (client, server net.Conn)

func pipePair(t *testing.T) (net.Conn, net.Conn) { return net.Pipe() }

func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		ch <- c
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return c, <-ch
}

func tlsPair(t *testing.T) (net.Conn, net.Conn) {
	c, s := tcpPair(t)
	scfg, _, err := transport.ServerTLS("", "")
	if err != nil {
		t.Fatal(err)
	}
	ccfg, err := transport.ClientTLS("", "", "")
	if err != nil {
		t.Fatal(err)
	}
	tc, ts := tls.Client(c, ccfg), tls.Server(s, scfg)
	errc := make(chan error, 1)
	go func() { errc <- ts.Handshake() }()
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return tc, ts
}

var connTypes = map[string]connPair{"pipe": pipePair, "tcp": tcpPair, "tls": tlsPair}

// blackHoleConn swallows writes once blocked: the peer never sees them and
// never answers, as when a middlebox dropped the flow.
type blackHoleConn struct {
	net.Conn
	blocked atomic.Bool
}

func (b *blackHoleConn) Write(p []byte) (int, error) {
	if b.blocked.Load() {
		return len(p), nil
	}
	return b.Conn.Write(p)
}

var testConf = Config{KeepaliveInterval: 50 * time.Millisecond, KeepaliveTimeout: 300 * time.Millisecond, MaxStreamWindow: 256 << 10,
	MaxStreams: 1024, StreamCloseTimeout: 5 * time.Second}

func sessions(t *testing.T, pair connPair, ccfg, scfg Config) (*Session, *Session, *blackHoleConn) {
	t.Helper()
	c, s := pair(t)
	bh := &blackHoleConn{Conn: c}
	cs, err := Client(bh, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := Server(s, scfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close(); ss.Close() })
	return cs, ss, bh
}

func wait(t *testing.T, s *Session, d time.Duration) error {
	t.Helper()
	select {
	case <-s.Done():
		return s.Err()
	case <-time.After(d):
		t.Fatalf("session still up after %v", d)
		return nil
	}
}

func TestStreamsAndHalfClose(t *testing.T) {
	for name, pair := range connTypes {
		t.Run(name, func(t *testing.T) {
			cs, ss, _ := sessions(t, pair, testConf, testConf)
			go func() {
				st, err := ss.Accept()
				if err != nil {
					return
				}
				io.Copy(st, st) // echo until the client's FIN, then FIN back
				st.Close()
			}()
			st, err := cs.Open()
			if err != nil {
				t.Fatal(err)
			}
			st.Write([]byte("hello"))
			st.(interface{ CloseWrite() error }).CloseWrite() // half-close: reading goes on
			got, err := io.ReadAll(st)
			if err != nil || string(got) != "hello" {
				t.Fatalf("got %q, %v", got, err)
			}
			if cs.Err() != nil {
				t.Fatalf("Err while running: %v", cs.Err())
			}
			if time.Since(cs.LastRead()) > time.Second {
				t.Fatal("LastRead not updated")
			}
		})
	}
}

func TestKeepaliveTimeout(t *testing.T) {
	for name, pair := range connTypes {
		t.Run(name, func(t *testing.T) {
			noKA := testConf
			noKA.KeepaliveInterval = 0
			cs, _, bh := sessions(t, pair, testConf, noKA)
			time.Sleep(3 * testConf.KeepaliveInterval) // some healthy pings first
			bh.blocked.Store(true)
			err := wait(t, cs, 5*time.Second)
			if !errors.Is(err, ErrKeepaliveTimeout) {
				t.Fatalf("err = %v, want ErrKeepaliveTimeout", err)
			}
		})
	}
}

func TestPeerClosed(t *testing.T) {
	for name, pair := range connTypes {
		t.Run(name, func(t *testing.T) {
			cs, ss, _ := sessions(t, pair, testConf, testConf)
			ss.Close()
			err := wait(t, cs, 5*time.Second)
			var ce *ConnError
			if !errors.Is(err, ErrPeerClosed) && !errors.As(err, &ce) {
				t.Fatalf("err = %v, want ErrPeerClosed or a ConnError", err)
			}
			if errors.Is(err, ErrKeepaliveTimeout) {
				t.Fatal("a closed peer reported as keepalive timeout")
			}
		})
	}
}

func TestReset(t *testing.T) {
	c, s := tcpPair(t)
	cs, err := Client(c, testConf)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	s.(*net.TCPConn).SetLinger(0)
	s.Close()
	err = wait(t, cs, 5*time.Second)
	var ce *ConnError
	if !errors.As(err, &ce) || ce.Op != "read" {
		t.Fatalf("err = %v, want a read ConnError", err)
	}
}

func TestCloseIdempotentAndCause(t *testing.T) {
	cs, _, _ := sessions(t, pipePair, testConf, testConf)
	cause := errors.New("my cause")
	cs.CloseWithCause(cause)
	cs.CloseWithCause(errors.New("later"))
	cs.Close()
	cs.Close()
	if err := cs.Err(); err != cause {
		t.Fatalf("Err = %v, want the first cause", err)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []Config{
		{KeepaliveInterval: -1, KeepaliveTimeout: time.Second, MaxStreamWindow: 256 << 10},
		{KeepaliveTimeout: 0, MaxStreamWindow: 256 << 10},
		{KeepaliveTimeout: time.Second, MaxStreamWindow: 1024},
		{KeepaliveTimeout: time.Second, MaxStreamWindow: 256 << 10, MaxStreams: 0, StreamCloseTimeout: time.Second},
		{KeepaliveTimeout: time.Second, MaxStreamWindow: 256 << 10, MaxStreams: 1, StreamCloseTimeout: 0},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

// Pings that go unanswered while the peer's bytes keep arriving are late,
// not lost: no keepalive timeout until the peer falls silent.
func TestKeepaliveToleratesLatePings(t *testing.T) {
	noKA := testConf
	noKA.KeepaliveInterval = 0
	cs, ss, bh := sessions(t, tcpPair, testConf, noKA)
	stop := make(chan struct{})
	go func() { // the server keeps streaming to the client
		st, err := ss.Open()
		if err != nil {
			return
		}
		defer st.Close()
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				st.Write([]byte("data"))
			}
		}
	}()
	go func() {
		st, err := cs.Accept()
		if err == nil {
			io.Copy(io.Discard, st)
		}
	}()
	bh.blocked.Store(true) // the client's pings (and everything else it sends) vanish
	select {
	case <-cs.Done():
		t.Fatalf("keepalive fired while data kept arriving: %v", cs.Err())
	case <-time.After(5 * testConf.KeepaliveTimeout):
	}
	close(stop)
	if err := wait(t, cs, 5*time.Second); !errors.Is(err, ErrKeepaliveTimeout) {
		t.Fatalf("err = %v, want ErrKeepaliveTimeout once the peer fell silent", err)
	}
}

// recordingConn remembers the sizes of its Writes.
type recordingConn struct {
	net.Conn
	mu    sync.Mutex
	sizes []int
}

func (r *recordingConn) Write(b []byte) (int, error) {
	r.mu.Lock()
	r.sizes = append(r.sizes, len(b))
	r.mu.Unlock()
	return r.Conn.Write(b)
}

func (r *recordingConn) has(n int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.sizes, n)
}

// A small data frame leaves as one write (one TLS record), a large one as
// header then body; the peer reads both intact.
func TestWriteCoalescing(t *testing.T) {
	c, s := tcpPair(t)
	rec := &recordingConn{Conn: c}
	cs, err := Client(rec, testConf)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	ss, err := Server(s, testConf)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	got := make(chan []byte, 1)
	go func() {
		st, err := ss.Accept()
		if err != nil {
			return
		}
		b, _ := io.ReadAll(st)
		got <- b
	}()
	st, err := cs.Open()
	if err != nil {
		t.Fatal(err)
	}
	small, large := []byte("hello"), bytes.Repeat([]byte{7}, coalesceMax+1)
	st.Write(small)
	st.Write(large)
	st.Close()
	b := <-got
	if !bytes.Equal(b, append(append([]byte{}, small...), large...)) {
		t.Fatalf("peer read %d bytes, want %d", len(b), len(small)+len(large))
	}
	if !rec.has(headerSize+len(small)) || !rec.has(len(large)) || rec.has(headerSize+len(large)) {
		t.Fatalf("write sizes %v: want %d (coalesced small frame) and %d (large body alone)", rec.sizes, headerSize+len(small), len(large))
	}
}

// SetKeepaliveInterval takes effect on a running session: a session
// started with an hour between pings notices a black hole within seconds
// once its interval is shortened.
func TestSetKeepaliveInterval(t *testing.T) {
	slow := testConf
	slow.KeepaliveInterval = time.Hour
	noKA := testConf
	noKA.KeepaliveInterval = 0
	cs, ss, bh := sessions(t, pipePair, slow, noKA)
	ss.SetKeepaliveInterval(time.Millisecond) // keepalive off: nothing to change
	cs.SetKeepaliveInterval(testConf.KeepaliveInterval)
	bh.blocked.Store(true)
	if err := wait(t, cs, 5*time.Second); !errors.Is(err, ErrKeepaliveTimeout) {
		t.Fatalf("err = %v, want ErrKeepaliveTimeout at the new interval", err)
	}
	cs.SetKeepaliveInterval(time.Second) // ended: returns
}
