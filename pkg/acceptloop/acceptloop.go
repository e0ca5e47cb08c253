// Package acceptloop is the accept loop of every TCP listener of hops and
// hopc: the control port, the public ports of tcp proxies and the local
// ports of visitors.
//
// A listener must never end up bound with nobody accepting, and a failed
// accept must never end the process: running out of file descriptors
// (EMFILE, ENFILE), of kernel memory (ENOBUFS, ENOMEM), a connection
// aborted in the backlog (ECONNABORTED) or a timeout are conditions a flood
// of connections can cause from outside, and they pass. So Serve waits out
// every failed accept with a backoff (5 ms doubling up to 1 s, reset by the
// next accepted connection) and tries again, and says what happens at most
// once per few seconds per listener: what failed, how often since its last
// line and what to do. Only a closed listener (net.ErrClosed) ends it.
package acceptloop

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/hopproxy/hop/pkg/backoff"
	"github.com/hopproxy/hop/pkg/fdlimit"
)

// Defaults of Options.
const (
	DefaultMinDelay = 5 * time.Millisecond
	DefaultMaxDelay = time.Second
	DefaultLogEvery = 5 * time.Second
)

// Options tune Serve; the zero value is the defaults.
type Options struct {
	// Log receives the lines about failing accepts; nil discards them.
	// Give it the listener's context (proxy, visitor): Serve adds addr.
	Log *slog.Logger
	// MinDelay is the wait after the first failed accept in a row; it
	// doubles with each further one up to MaxDelay. Zero means the
	// defaults.
	MinDelay, MaxDelay time.Duration
	// LogEvery is the least time between two lines about failing
	// accepts of this listener. Zero means DefaultLogEvery.
	LogEvery time.Duration
}

// Serve accepts connections on ln until ln is closed and hands each to
// handle on Serve's goroutine, so handle must not block: it starts the
// connection's own goroutine. Serve returns nil once ln is closed, and
// ctx.Err() if ctx ends while it waits out a failed accept (ctx does not
// interrupt a pending Accept: close ln for that). Any other accept error
// is logged, rate-limited, and retried after a backoff.
func Serve(ctx context.Context, ln net.Listener, handle func(net.Conn), opts Options) error {
	minD, maxD := opts.MinDelay, opts.MaxDelay
	if minD <= 0 {
		minD = DefaultMinDelay
	}
	if maxD <= 0 {
		maxD = DefaultMaxDelay
	}
	maxD = max(maxD, minD)
	r := reporter{log: opts.Log, every: opts.LogEvery}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.every <= 0 {
		r.every = DefaultLogEvery
	}
	r.log = r.log.With("addr", ln.Addr().String())
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err == nil {
			delay = 0
			r.accepted()
			handle(c)
			continue
		}
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if delay == 0 {
			delay = minD
		} else {
			delay = min(2*delay, maxD)
		}
		r.failedAccept(err, delay)
		if !backoff.Sleep(ctx, delay) {
			return ctx.Err()
		}
	}
}

// reporter rate-limits the lines of one listener: the first failure is
// logged at once, later ones at most once per every, each line counting
// the failures since the previous one.
type reporter struct {
	log    *slog.Logger
	every  time.Duration
	last   time.Time // when the last line was logged; zero before the first
	failed int       // failed accepts not yet counted in a line
}

func (r *reporter) due(now time.Time) bool {
	return r.last.IsZero() || now.Sub(r.last) >= r.every
}

func (r *reporter) failedAccept(err error, retryIn time.Duration) {
	r.failed++
	now := time.Now()
	if !r.due(now) {
		return
	}
	k := classify(err)
	args := []any{"error", err, "errors", r.failed, "retry_in", retryIn, "hint", k.hint}
	if k.fdLimit {
		if l, lerr := fdlimit.Get(); lerr == nil {
			args = append(args, "fd_limit_soft", l.Soft, "fd_limit_hard", l.Hard)
		}
	}
	r.log.Log(context.Background(), k.level, k.msg, args...)
	r.last, r.failed = now, 0
}

// accepted reports the failures not yet counted in a line once the
// listener accepts again, if a line is due.
func (r *reporter) accepted() {
	if r.failed == 0 {
		return
	}
	now := time.Now()
	if !r.due(now) {
		return
	}
	r.log.Info("accepting connections again", "errors", r.failed)
	r.last, r.failed = now, 0
}

// kind is what an accept error means for an operator.
type kind struct {
	level   slog.Level
	msg     string
	hint    string
	fdLimit bool // report the descriptor limit with it
}

func classify(err error) kind {
	switch {
	case errors.Is(err, syscall.EMFILE):
		return kind{slog.LevelWarn, "accept failed: this process is out of file descriptors; retrying",
			"raise the open files limit: ulimit -n in the shell that starts it, LimitNOFILE= in a systemd unit; connections over the limit wait in the listen backlog", true}
	case errors.Is(err, syscall.ENFILE):
		return kind{slog.LevelWarn, "accept failed: the system is out of file descriptors; retrying",
			"the kernel's file table is full: raise fs.file-max (sysctl) or stop what holds the files; ulimit -n of this process is not the limit that was hit", true}
	case errors.Is(err, syscall.ENOBUFS), errors.Is(err, syscall.ENOMEM):
		return kind{slog.LevelWarn, "accept failed: the kernel is out of memory for sockets; retrying",
			"free memory, or raise the socket memory limits (net.ipv4.tcp_mem, net.core.*mem_max)", false}
	case errors.Is(err, syscall.ECONNABORTED):
		return kind{slog.LevelInfo, "accept failed: a connection was aborted before it was accepted; retrying",
			"harmless when rare: the peer gave up while waiting in the listen backlog", false}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return kind{slog.LevelDebug, "accept timed out; retrying", "harmless", false}
	}
	return kind{slog.LevelError, "accept failed: unexpected error; retrying",
		"the listener is kept open and retried with backoff; report this error if it persists", false}
}
