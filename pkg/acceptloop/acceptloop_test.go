package acceptloop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// fakeListener plays a script of accept results, then those sent on
// more, until Close.
type fakeListener struct {
	mu     sync.Mutex
	script []result
	more   chan result
	calls  []time.Time // when Accept was called
	closed chan struct{}
	once   sync.Once
}

type result struct {
	c   net.Conn
	err error
}

func newFake(script ...result) *fakeListener {
	return &fakeListener{script: script, more: make(chan result), closed: make(chan struct{})}
}

func (l *fakeListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	l.calls = append(l.calls, time.Now())
	if len(l.script) > 0 {
		r := l.script[0]
		l.script = l.script[1:]
		l.mu.Unlock()
		return r.c, r.err
	}
	l.mu.Unlock()
	select {
	case r := <-l.more:
		return r.c, r.err
	case <-l.closed:
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: net.ErrClosed}
	}
}

func (l *fakeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7000} }

// gaps are the waits between consecutive Accept calls.
func (l *fakeListener) gaps() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var g []time.Duration
	for i := 1; i < len(l.calls); i++ {
		g = append(g, l.calls[i].Sub(l.calls[i-1]))
	}
	return g
}

// acceptErr is what the net package returns for a failed accept4.
func acceptErr(errno syscall.Errno) result {
	return result{err: &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}}
}

func times(n int, r result) []result {
	s := make([]result, n)
	for i := range s {
		s[i] = r
	}
	return s
}

type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuf) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := strings.TrimSpace(b.buf.String())
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func (b *logBuf) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// run serves ln in the background and returns the handled connections'
// channel and a function that closes ln and returns Serve's result.
func run(ctx context.Context, ln *fakeListener, opts Options) (<-chan net.Conn, func() error) {
	handled := make(chan net.Conn, 16)
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, func(c net.Conn) { handled <- c }, opts) }()
	return handled, func() error { ln.Close(); return <-done }
}

func ms(d ...int) []time.Duration {
	out := make([]time.Duration, len(d))
	for i, v := range d {
		out[i] = time.Duration(v) * time.Millisecond
	}
	return out
}

// TestSurvivesEMFILE is the attack in small: accept fails with EMFILE
// (what a flood of connections over ulimit -n causes) five times, then
// a connection comes. The loop waits 5, 10, 20, 40, 80 ms, hands the
// connection on, and says once what happened and what to do.
func TestSurvivesEMFILE(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log logBuf
		c1, c2 := net.Pipe()
		defer c2.Close()
		ln := newFake(append(times(5, acceptErr(syscall.EMFILE)), result{c: c1})...)
		handled, stop := run(t.Context(), ln, Options{Log: log.logger()})
		if got := <-handled; got != c1 {
			t.Fatalf("handled %v, want the scripted conn", got)
		}
		if err := stop(); err != nil {
			t.Fatalf("Serve after Close = %v, want nil", err)
		}
		if g, want := ln.gaps(), ms(5, 10, 20, 40, 80, 0); fmt.Sprint(g) != fmt.Sprint(want) {
			t.Fatalf("waits between accepts %v, want %v", g, want)
		}
		lines := log.lines()
		if len(lines) != 1 {
			t.Fatalf("%d log lines, want 1:\n%s", len(lines), strings.Join(lines, "\n"))
		}
		for _, want := range []string{"level=WARN", "out of file descriptors", "too many open files", "errors=1", "ulimit -n", "addr=127.0.0.1:7000", "fd_limit_soft=", "retry_in=5ms"} {
			if !strings.Contains(lines[0], want) {
				t.Errorf("log line lacks %q: %s", want, lines[0])
			}
		}
	})
}

// TestBackoffCapsAndResets: the wait doubles up to MaxDelay and starts
// over at MinDelay after an accepted connection.
func TestBackoffCapsAndResets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c1, c2 := net.Pipe()
		defer c2.Close()
		script := append(times(10, acceptErr(syscall.ENFILE)), result{c: c1})
		script = append(script, times(2, acceptErr(syscall.ENOBUFS))...)
		ln := newFake(script...)
		handled, stop := run(t.Context(), ln, Options{})
		<-handled
		synctest.Wait() // the loop is back in Accept after the last error
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		want := ms(5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 0, 5, 10)
		if g := ln.gaps(); fmt.Sprint(g) != fmt.Sprint(want) {
			t.Fatalf("waits %v, want %v", g, want)
		}
	})
}

var errorsAttr = regexp.MustCompile(`errors=(\d+)`)

// TestLogIsRateLimitedAndCounts: 40 failures over about 33 s of fake time
// give one line per LogEvery, whose counts add up to every failure, the
// last ones reported when the listener accepts a connection once a line
// is due again.
func TestLogIsRateLimitedAndCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log logBuf
		c1, c2 := net.Pipe()
		defer c2.Close()
		const n = 40
		ln := newFake(append(times(n, acceptErr(syscall.EMFILE)), result{c: c1})...)
		began := time.Now()
		handled, stop := run(t.Context(), ln, Options{Log: log.logger()})
		<-handled
		if l := log.lines(); strings.Contains(l[len(l)-1], "again") {
			t.Fatalf("recovery reported less than LogEvery after the last line:\n%s", strings.Join(l, "\n"))
		}
		time.Sleep(DefaultLogEvery) // fake time: the next line is due
		c3, c4 := net.Pipe()
		defer c4.Close()
		ln.more <- result{c: c3}
		<-handled
		elapsed := time.Since(began)
		stop()
		lines := log.lines()
		if max := 1 + int(elapsed/DefaultLogEvery); len(lines) > max || len(lines) < 2 {
			t.Fatalf("%d lines in %v, want 2..%d:\n%s", len(lines), elapsed, max, strings.Join(lines, "\n"))
		}
		total := 0
		for _, l := range lines {
			m := errorsAttr.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("line without a count: %s", l)
			}
			k, _ := strconv.Atoi(m[1])
			total += k
		}
		if total != n {
			t.Fatalf("counts add up to %d, want %d:\n%s", total, n, strings.Join(lines, "\n"))
		}
		if last := lines[len(lines)-1]; !strings.Contains(last, "accepting connections again") {
			t.Fatalf("last line %q, want the recovery with the remaining count", last)
		}
	})
}

// TestEveryErrorKindIsRetried: whatever Accept returns short of a closed
// listener, the loop keeps going and says what it was.
func TestEveryErrorKindIsRetried(t *testing.T) {
	timeout := result{err: &net.OpError{Op: "accept", Net: "tcp", Err: os.ErrDeadlineExceeded}}
	for _, tc := range []struct {
		name  string
		r     result
		level string
		msg   string
	}{
		{"EMFILE", acceptErr(syscall.EMFILE), "WARN", "this process is out of file descriptors"},
		{"ENFILE", acceptErr(syscall.ENFILE), "WARN", "the system is out of file descriptors"},
		{"ENOBUFS", acceptErr(syscall.ENOBUFS), "WARN", "out of memory for sockets"},
		{"ENOMEM", acceptErr(syscall.ENOMEM), "WARN", "out of memory for sockets"},
		{"ECONNABORTED", acceptErr(syscall.ECONNABORTED), "INFO", "aborted before it was accepted"},
		{"timeout", timeout, "DEBUG", "accept timed out"},
		{"unexpected", result{err: errors.New("something new")}, "ERROR", "unexpected error"},
		{"unexpected errno", acceptErr(syscall.EINVAL), "ERROR", "unexpected error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var log logBuf
				c1, c2 := net.Pipe()
				defer c2.Close()
				ln := newFake(tc.r, tc.r, tc.r, result{c: c1})
				handled, stop := run(t.Context(), ln, Options{Log: log.logger()})
				<-handled
				stop()
				lines := log.lines()
				if len(lines) != 1 || !strings.Contains(lines[0], "level="+tc.level) || !strings.Contains(lines[0], tc.msg) {
					t.Fatalf("want one %s line with %q, got:\n%s", tc.level, tc.msg, strings.Join(lines, "\n"))
				}
			})
		})
	}
}

// TestClosedListenerEnds: only a closed listener ends the loop, at once
// and without a line.
func TestClosedListenerEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log logBuf
		ln := newFake()
		ln.Close()
		calls := 0
		if err := Serve(t.Context(), ln, func(net.Conn) { calls++ }, Options{Log: log.logger()}); err != nil || calls != 0 {
			t.Fatalf("Serve on a closed listener = %v after %d conns", err, calls)
		}
		if l := log.lines(); len(l) != 0 {
			t.Fatalf("logged %v", l)
		}
	})
}

// TestContextEndsTheWait: a cancelled context ends the loop while it
// waits after a failure.
func TestContextEndsTheWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		ln := newFake(times(100, acceptErr(syscall.EMFILE))...)
		done := make(chan error, 1)
		go func() { done <- Serve(ctx, ln, func(net.Conn) {}, Options{MinDelay: time.Hour}) }()
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Serve = %v, want context.Canceled", err)
		}
	})
}

// TestRealListener: a real TCP listener on loopback, its connections
// handed on, Close ends the loop.
func TestRealListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	handled := make(chan net.Conn, 1)
	done := make(chan error, 1)
	go func() { done <- Serve(context.Background(), ln, func(c net.Conn) { handled <- c }, Options{}) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := <-handled
	s.Close()
	ln.Close()
	if err := <-done; err != nil {
		t.Fatalf("Serve after Close = %v", err)
	}
}
