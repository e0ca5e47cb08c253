package sniff

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// byFirstByte sends "a..." to queue 0 and "b..." to queue 1, reading
// until a newline; anything else is refused.
func byFirstByte(c net.Conn, _ time.Time) (int, []byte, error) {
	var buf []byte
	b := make([]byte, 1)
	for len(buf) == 0 || buf[len(buf)-1] != '\n' {
		if _, err := c.Read(b); err != nil {
			return 0, nil, err
		}
		buf = append(buf, b[0])
	}
	switch buf[0] {
	case 'a':
		return 0, buf, nil
	case 'b':
		return 1, buf, nil
	case 'z':
		return 7, buf, nil // out of range
	}
	return 0, nil, errors.New("unknown")
}

// readClosed reads c to its end: nil when the peer closed it (a reset
// counts: closing a socket with unread bytes resets it).
func readClosed(c net.Conn) error {
	_, err := io.ReadAll(c)
	if errors.Is(err, syscall.ECONNRESET) {
		return nil
	}
	return err
}

func start(t *testing.T, cfg Config) *Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(ln, 2, byFirstByte, cfg)
	l.Start()
	t.Cleanup(func() { l.Close() })
	return l
}

func dial(t *testing.T, l *Listener, msg string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if msg != "" {
		io.WriteString(c, msg)
	}
	return c
}

func acceptLine(t *testing.T, q net.Listener) (net.Conn, string) {
	t.Helper()
	c, err := q.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	b := make([]byte, 64)
	n, err := io.ReadAtLeast(c, b, 1)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b[:n])
	for !strings.HasSuffix(got, "!") {
		m, err := c.Read(b)
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		got += string(b[:m])
	}
	return c, got
}

// Each connection reaches the queue its first bytes pick, with those
// bytes replayed and the rest following; the queues share the address.
func TestRoutesAndReplays(t *testing.T) {
	l := start(t, Config{})
	if l.Queue(0).Addr().String() != l.Addr().String() || l.Queue(1).Addr().String() != l.Addr().String() {
		t.Fatal("queues do not have the shared address")
	}
	dial(t, l, "b-one\nrest!")
	cb, got := acceptLine(t, l.Queue(1))
	if got != "b-one\nrest!" {
		t.Fatalf("queue 1 read %q", got)
	}
	dial(t, l, "a-two\nmore!")
	if _, got := acceptLine(t, l.Queue(0)); got != "a-two\nmore!" {
		t.Fatalf("queue 0 read %q", got)
	}
	// The connection is a whole one: writes go back to the dialer.
	if _, err := io.WriteString(cb, "reply"); err != nil {
		t.Fatal(err)
	}
}

// Unknown first bytes, an out-of-range queue and a silent peer (past
// Timeout) are closed; a closed queue's connections too, while the
// other queue goes on.
func TestRefusals(t *testing.T) {
	l := start(t, Config{Timeout: 200 * time.Millisecond})
	for _, msg := range []string{"x\n", "z\n", ""} {
		c := dial(t, l, msg)
		if err := readClosed(c); err != nil {
			t.Fatalf("%q: %v, want closed by the listener", msg, err)
		}
	}
	l.Queue(1).Close()
	l.Queue(1).Close()
	if _, err := l.Queue(1).Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept on a closed queue: %v", err)
	}
	c := dial(t, l, "b\n")
	if err := readClosed(c); err != nil {
		t.Fatalf("connection for a closed queue: %v, want closed", err)
	}
	dial(t, l, "a\n!")
	if _, got := acceptLine(t, l.Queue(0)); got != "a\n!" {
		t.Fatalf("queue 0 read %q", got)
	}
}

// MaxPending bounds the connections being sniffed: one more is closed
// at once.
func TestMaxPending(t *testing.T) {
	l := start(t, Config{MaxPending: 1, Timeout: time.Minute})
	dial(t, l, "a") // no newline: stays in classification
	deadline := time.Now().Add(20 * time.Second)
	for l.pending.Count() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("first connection never pending")
		}
		time.Sleep(5 * time.Millisecond)
	}
	c := dial(t, l, "a\n")
	if err := readClosed(c); err != nil {
		t.Fatalf("second connection: %v, want closed at once", err)
	}
}

// Closing the last queue closes the listener: the port is freed, and
// a connection being sniffed is closed without waiting for Timeout.
func TestLastQueueCloses(t *testing.T) {
	l := start(t, Config{Timeout: time.Minute})
	slow := dial(t, l, "a")
	deadline := time.Now().Add(20 * time.Second)
	for l.pending.Count() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("connection never pending")
		}
		time.Sleep(5 * time.Millisecond)
	}
	done := make(chan struct{})
	go func() {
		l.Queue(0).Close()
		l.Queue(1).Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("closing the queues did not return")
	}
	if err := readClosed(slow); err != nil {
		t.Fatalf("pending connection: %v, want closed", err)
	}
	if c, err := net.Dial("tcp", l.Addr().String()); err == nil {
		c.Close()
		t.Fatal("the port still accepts")
	}
	if _, err := l.Queue(0).Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
}

// A Listener closed before Start, or never started, frees its port.
func TestCloseBeforeStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(ln, 1, byFirstByte, Config{})
	l.Close()
	l.Start()
	l.Close()
	if _, err := l.Queue(0).Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept: %v", err)
	}
}

// Admit is asked for every connection before sniffing; a refusal closes
// it, and leave follows each classification.
func TestAdmit(t *testing.T) {
	var mu sync.Mutex
	entered, left := 0, 0
	l := start(t, Config{Admit: func(a net.Addr) (func(), error) {
		mu.Lock()
		defer mu.Unlock()
		if entered == 1 {
			entered++
			return nil, errors.New("over the cap")
		}
		entered++
		return func() { mu.Lock(); left++; mu.Unlock() }, nil
	}})
	dial(t, l, "a\n!")
	if _, got := acceptLine(t, l.Queue(0)); got != "a\n!" {
		t.Fatalf("admitted connection read %q", got)
	}
	c := dial(t, l, "a\n!")
	if err := readClosed(c); err != nil {
		t.Fatalf("refused connection: %v, want closed", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if entered != 2 || left != 1 {
		t.Fatalf("entered %d, left %d; want 2, 1", entered, left)
	}
}
